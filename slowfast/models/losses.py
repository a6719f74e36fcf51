"""Classification losses named by MODEL.LOSS_FUNC."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from slowfast.config import ConfigError

__all__ = ["soft_cross_entropy", "cross_entropy", "get_loss_func", "LOSSES"]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_b[-sum_k y_bk log_softmax(logits_b)_k]; integer labels become one-hot (then equal to cross-entropy).

    Computed in fp32 so that autocast-fp16 logits do not lose the small log-probabilities.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    if target.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        # No range check here: it would synchronise host and device every iteration; the dataset checks labels.
        return -logp.gather(-1, target.long().unsqueeze(-1)).squeeze(-1).mean()
    if target.shape != logits.shape:
        raise ValueError(f"soft targets {tuple(target.shape)} do not match logits {tuple(logits.shape)}")
    return -(target.float() * logp).sum(dim=-1).mean()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Standard mean cross-entropy over integer labels (fp32)."""
    return F.cross_entropy(logits.float(), target)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": cross_entropy,
    "soft_cross_entropy": soft_cross_entropy,
}


def get_loss_func(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r} (MODEL.LOSS_FUNC: {', '.join(LOSSES)})")
    return LOSSES[name]
