"""Learning rate as a function of the fractional epoch (per-iteration linear warmup, then cosine).

The schedule is a pure function of `epoch + iter / iters_per_epoch`, so a run resumed from a checkpoint
gets exactly the learning rates of an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from slowfast.config import ConfigError

__all__ = ["LRSchedule", "lr_at_epoch", "schedule_from_cfg", "get_lr_at_epoch", "set_lr"]


@dataclass(frozen=True)
class LRSchedule:
    """The SOLVER keys that define the learning rate (see `slowfast/config/defaults.py`)."""

    base_lr: float
    max_epoch: float
    policy: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    cosine_end_lr: float = 0.0
    cosine_after_warmup: bool = True
    cosine_restart_epoch: float = 0.0


def _policy_lr(s: LRSchedule, epoch: float) -> float:
    if s.policy == "constant":
        return s.base_lr
    if s.policy != "cosine":
        raise ConfigError(f"unknown learning-rate policy {s.policy!r} (SOLVER.LR_POLICY: cosine or constant)")
    offset = s.warmup_epochs if s.cosine_after_warmup else 0.0
    span = s.max_epoch - offset
    t = epoch - offset
    if s.cosine_restart_epoch > 0:
        span = s.cosine_restart_epoch
        t = t % s.cosine_restart_epoch
    if span <= 0:
        return s.base_lr
    return s.cosine_end_lr + (s.base_lr - s.cosine_end_lr) * (1.0 + math.cos(math.pi * t / span)) / 2.0


def lr_at_epoch(s: LRSchedule, epoch: float) -> float:
    """Learning rate at fractional epoch `epoch` (linear warmup to the policy's value at WARMUP_EPOCHS; docs/method.md)."""
    if epoch < s.warmup_epochs:
        end = _policy_lr(s, s.warmup_epochs)
        return s.warmup_start_lr + epoch * (end - s.warmup_start_lr) / s.warmup_epochs
    return _policy_lr(s, epoch)


def schedule_from_cfg(cfg) -> LRSchedule:
    sol = cfg.SOLVER
    return LRSchedule(
        base_lr=float(sol.BASE_LR),
        max_epoch=float(sol.MAX_EPOCH),
        policy=sol.LR_POLICY,
        warmup_epochs=float(sol.WARMUP_EPOCHS),
        warmup_start_lr=float(sol.WARMUP_START_LR),
        cosine_end_lr=float(sol.COSINE_END_LR),
        cosine_after_warmup=bool(sol.COSINE_AFTER_WARMUP),
        cosine_restart_epoch=float(sol.COSINE_RESTART_EPOCH),
    )


def get_lr_at_epoch(cfg, epoch: float) -> float:
    """PySlowFast's name: the learning rate of `cfg`'s schedule at fractional epoch `epoch`."""
    return lr_at_epoch(schedule_from_cfg(cfg), epoch)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to `lr` times the group's `lr_factor` (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)
