"""Run helpers shared by training, testing and classification: seeding and mixed-precision settings."""

from __future__ import annotations

import random

import numpy as np
import torch

from slowfast.config.choices import MIXED_PRECISION_DTYPES
from slowfast.errors import UserError
from slowfast.utils.seeding import derive_seed

__all__ = ["seed_everything", "amp_settings", "autocast_dtype"]


def seed_everything(seed: int, *keys: int) -> None:
    """Seed torch (all devices), numpy and `random` from `seed` and optional keys (epoch, rank)."""
    s = derive_seed(seed, *keys)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def autocast_dtype(choice: str, device_type: str, bf16_supported: bool) -> tuple[torch.dtype, bool]:
    """(autocast dtype, grad scaler on) for TRAIN.MIXED_PRECISION_DTYPE on a device type.

    fp16 overflows without loss scaling, so float16 on CUDA comes with a grad scaler; bf16 keeps fp32's
    exponent range and needs none. The CPU autocasts to bf16 only. Pure, so it is tested without a GPU.
    """
    if choice not in MIXED_PRECISION_DTYPES:
        raise UserError(f"TRAIN.MIXED_PRECISION_DTYPE must be one of {', '.join(MIXED_PRECISION_DTYPES)}, got {choice!r}")
    if device_type != "cuda":
        return torch.bfloat16, False
    if choice == "bfloat16" or (choice == "auto" and bf16_supported):
        return torch.bfloat16, False
    return torch.float16, True


def amp_settings(enabled: bool, device: torch.device, dtype: str = "auto") -> tuple[bool, torch.dtype, bool]:
    """(autocast on, autocast dtype, grad scaler on) for TRAIN.MIXED_PRECISION and MIXED_PRECISION_DTYPE."""
    if not enabled:
        return False, torch.float32, False
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp_dtype, scaler_on = autocast_dtype(dtype, device.type, supported)
    return True, amp_dtype, scaler_on
