"""Optimizer with the original code's parameter groups (docs/method.md, "Optimisation").

Two groups: "decay" (weight decay = SOLVER.WEIGHT_DECAY) and "no_decay". With SOLVER.ZERO_WD_1D_PARAM,
1-D parameters (LayerNorm, class embedding) and every `*.bias` go to "no_decay". The 0-d
`model.logit_scale` is neither 1-D nor a bias, so, as in the original (inherited from Open-VCLIP), it
is decayed: we keep that for parity (a row of docs/differences.md). Frozen parameters (text tower, raw_model teacher)
are left out, so the optimizer holds state only for what is trained.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn

from slowfast.config import ConfigError

__all__ = ["param_groups", "build_optimizer", "construct_optimizer"]


def _no_weight_decay_names(model: nn.Module) -> set[str]:
    fn = getattr(model, "no_weight_decay", None)
    return set(fn()) if callable(fn) else set()


def param_groups(model: nn.Module, weight_decay: float, zero_wd_1d: bool = True) -> list[dict]:
    """[{"params", "weight_decay", "name", "param_names", "lr_factor"}] over the trainable parameters."""
    skip = _no_weight_decay_names(model)
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in skip or (zero_wd_1d and (p.ndim == 1 or name.endswith(".bias"))):
            no_decay.append(p)
            no_decay_names.append(name)
        else:  # >= 2-D weights and 0-d scalars such as logit_scale (parity, see module docstring)
            decay.append(p)
            decay_names.append(name)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "name": "decay",
                       "param_names": decay_names, "lr_factor": 1.0})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "name": "no_decay",
                       "param_names": no_decay_names, "lr_factor": 1.0})
    if not groups:
        raise ValueError("the model has no trainable parameters (every parameter has requires_grad=False)")
    return groups


def build_optimizer(
    groups: Iterable[dict],
    method: str,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    groups = list(groups)
    if method == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)
    if method == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ConfigError(f"unknown optimizer {method!r} (SOLVER.OPTIMIZING_METHOD: adamw or sgd)")


def construct_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """The optimizer of `cfg.SOLVER` over `model`'s trainable parameters (unwrap DDP before calling)."""
    groups = param_groups(model, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.ZERO_WD_1D_PARAM)
    return build_optimizer(groups, cfg.SOLVER.OPTIMIZING_METHOD, cfg.SOLVER.BASE_LR,
                           betas=tuple(cfg.SOLVER.BETAS), momentum=cfg.SOLVER.MOMENTUM)
