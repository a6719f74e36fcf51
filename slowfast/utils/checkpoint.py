"""Checkpoint files: atomic writes by rank 0, newest complete one for auto-resume, safe loading.

File: `OUTPUT_DIR/checkpoints/checkpoint_epoch_{epoch+1:05d}.pyth`, a dict
`{"epoch": int (0-based), "model_state", "optimizer_state", "scaler_state", "cfg": yaml str}`, the
layout of the original code's checkpoints.
Written to a temporary file in the same folder and renamed, so a run killed while saving leaves either
the old set of files or the new complete one, never a truncated `.pyth`. Loading uses
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Optional
from collections.abc import Mapping

import torch
import torch.nn as nn

from slowfast.errors import UserError
from slowfast.utils import distributed as du
from slowfast.utils.atomic import atomic_torch_save

__all__ = [
    "CheckpointError", "checkpoint_dir", "checkpoint_path", "list_checkpoints", "last_checkpoint",
    "save_checkpoint", "read_checkpoint", "load_checkpoint", "load_model_state", "unwrap",
]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint_epoch_(\d+)\.pyth$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir: str, epoch: int) -> str:
    """Path of the checkpoint saved after 0-based `epoch` (the file name is 1-based, as the original's)."""
    return os.path.join(checkpoint_dir(output_dir), f"checkpoint_epoch_{epoch + 1:05d}.pyth")


def list_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint files in OUTPUT_DIR/checkpoints, oldest epoch first (by the number, not the string)."""
    d = checkpoint_dir(output_dir)
    if not os.path.isdir(d):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(d) if (m := _NAME.match(name))]
    return [os.path.join(d, name) for _, name in sorted(found)]


def read_checkpoint(path: str, map_location: Any = "cpu") -> dict:
    """The checkpoint dict in `path` (weights_only); a CheckpointError names the file when it is unreadable."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {first}") from None
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{path} is not a checkpoint dict (got {type(ckpt).__name__})")
    return dict(ckpt)


def last_checkpoint(output_dir: str) -> Optional[str]:
    """Newest checkpoint that can be read completely; unreadable newer files are skipped with a warning."""
    for path in reversed(list_checkpoints(output_dir)):
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as e:
            logger.warning("skipping %s", e)
            continue
        if "model_state" in ckpt and "epoch" in ckpt:
            return path
        logger.warning("skipping %s: no model_state/epoch", path)
    return None


def save_checkpoint(
    output_dir: str,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    epoch: int,
    cfg: Any = None,
    scaler: Optional[Any] = None,
) -> Optional[str]:
    """Write the checkpoint of 0-based `epoch` (rank 0 only; other ranks return None)."""
    if not du.is_master():
        return None
    path = checkpoint_path(output_dir, epoch)
    state = {
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "cfg": cfg.dump() if hasattr(cfg, "dump") else cfg,
    }
    atomic_torch_save(state, path)
    return path


def _strip_module(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def load_model_state(
    model: nn.Module, model_state: Mapping[str, torch.Tensor], source: str, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load `model_state` into `model` (DDP unwrapped, `module.` prefixes removed).

    strict: any missing or unexpected key is a CheckpointError naming a few. Non-strict: returns
    (missing, unexpected) for the caller to report; an error only when no key matches at all or shapes differ.
    """
    target = unwrap(model)
    sd = _strip_module(model_state)
    own = target.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"{source}: {len(bad)} tensors do not fit the model, e.g. {'; '.join(bad[:3])}")
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{source}: {len(missing)} model keys missing (e.g. {', '.join(missing[:3])}) and "
            f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])}); was it made with another config?"
        )
    if not strict and len(missing) == len(own) and own:
        raise CheckpointError(f"{source}: no key matches the model (e.g. file has {', '.join(list(sd)[:3])})")
    target.load_state_dict(sd, strict=False)
    return missing, unexpected


def load_checkpoint(
    path: str,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scaler: Optional[Any] = None,
    strict: bool = True,
) -> int:
    """Load a training checkpoint (model, and optimizer/scaler when given); returns its 0-based epoch (-1 if none)."""
    ckpt = read_checkpoint(path)
    if "model_state" not in ckpt:
        raise CheckpointError(f"{path} has no 'model_state' (keys: {', '.join(list(ckpt)[:6])})")
    load_model_state(model, ckpt["model_state"], path, strict=strict)
    if optimizer is not None and ckpt.get("optimizer_state") is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer_state"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit ({e})") from None
    if scaler is not None and ckpt.get("scaler_state"):
        scaler.load_state_dict(ckpt["scaler_state"])
    return int(ckpt.get("epoch", -1))
