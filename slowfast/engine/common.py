"""Run helpers shared by training, testing and classification: seeding, mixed precision, and building
the model and the loaders with user mistakes reported as one-line `UserError`s."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from yacs.config import CfgNode

from slowfast.config.choices import MIXED_PRECISION_DTYPES
from slowfast.datasets.loader import build_loader
from slowfast.errors import UserError
from slowfast.models import build_model
from slowfast.models.clip import CLIPWeightsError
from slowfast.models.temporal_ops import TemporalOpError
from slowfast.text.features import TextFeatureError
from slowfast.utils.seeding import derive_seed

__all__ = ["seed_everything", "amp_settings", "autocast_dtype", "MIXED_PRECISION_DTYPES", "user_errors", "build_model_checked", "build_loader_checked"]

# Errors of the model and text layers that describe the user's input but do not derive from UserError
# yet. Listed here, in one place, until those classes derive from UserError themselves.
_NOT_YET_USER_ERRORS: tuple[type[Exception], ...] = (CLIPWeightsError, TemporalOpError, TextFeatureError)


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


@contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise the user-input errors of layers that do not use `UserError` yet as `UserError`s (the
    tools print those on one line). Every other exception passes unchanged, with its traceback."""
    try:
        yield
    except UserError:
        raise
    except _NOT_YET_USER_ERRORS as e:
        raise UserError(str(e)) from e


def build_model_checked(cfg: CfgNode) -> nn.Module:
    """`slowfast.models.build_model(cfg)`, with user mistakes (weights, class lists) as `UserError`s."""
    with user_errors():
        return build_model(cfg)


def build_loader_checked(cfg: CfgNode, split: str) -> DataLoader:
    """`slowfast.datasets.build_loader(cfg, split)`, with user mistakes (CSV files) as `UserError`s."""
    with user_errors():
        return build_loader(cfg, split)
