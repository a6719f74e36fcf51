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

from slowfast.datasets.loader import build_loader
from slowfast.errors import UserError
from slowfast.models import build_model
from slowfast.models.clip import CLIPWeightsError
from slowfast.models.temporal_ops import TemporalOpError
from slowfast.text.features import TextFeatureError
from slowfast.utils.seeding import derive_seed

__all__ = ["seed_everything", "amp_settings", "user_errors", "build_model_checked", "build_loader_checked"]

# Errors of the model and text layers that describe the user's input but do not derive from UserError
# yet. Listed here, in one place, until those classes derive from UserError themselves.
_NOT_YET_USER_ERRORS: tuple[type[Exception], ...] = (CLIPWeightsError, TemporalOpError, TextFeatureError)


def seed_everything(seed: int, *keys: int) -> None:
    """Seed torch (all devices), numpy and `random` from `seed` and optional keys (epoch, rank)."""
    s = derive_seed(seed, *keys)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def amp_settings(enabled: bool, device: torch.device) -> tuple[bool, torch.dtype, bool]:
    """(autocast on, autocast dtype, grad scaler on): fp16 + scaler on CUDA, bf16 without scaler elsewhere."""
    if not enabled:
        return False, torch.float32, False
    if device.type == "cuda":
        return True, torch.float16, True
    return True, torch.bfloat16, False


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
