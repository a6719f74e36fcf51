"""Checkpoint files: atomic writes by rank 0, newest complete one for auto-resume, safe loading.

File: `OUTPUT_DIR/checkpoints/checkpoint_epoch_{epoch+1:05d}.pyth`, a dict
`{"epoch": int (0-based), "model_state", "optimizer_state", "scaler_state", "cfg": yaml str}`, the
layout of the original code's checkpoints, plus `"env"`: the commit and package versions it was made with
(`slowfast.utils.env.provenance`), which loading compares with the running environment (a warning, never
a refusal).
Written to a temporary file in the same folder and renamed, so a run killed while saving leaves either
the old set of files or the new complete one, never a truncated `.pyth`. Weights that hold NaN or inf are
never written, and a full disk stops the save with the file removed: both are a `CheckpointWriteError` line
naming the last complete checkpoint, which stays. Loading uses `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Optional

import torch
import torch.nn as nn
import yaml

from slowfast.config.choices import OPERATOR_FIELDS, OPERATOR_WEIGHT_FIELDS
from slowfast.errors import UserError
from slowfast.utils import distributed as du
from slowfast.utils import env as envu
from slowfast.utils.atomic import atomic_torch_save, in_chain, no_room
from slowfast.utils.checkpoint_files import checkpoint_dir, checkpoint_epochs, checkpoint_path, list_checkpoints

__all__ = [
    "CheckpointError", "CheckpointWriteError", "first_nonfinite", "checkpoint_dir", "checkpoint_path", "list_checkpoints", "last_checkpoint",
    "save_checkpoint", "read_checkpoint", "load_checkpoint", "load_model_state", "unwrap",
    "MODEL_KEYS", "OPERATOR_KEYS", "checkpoint_config", "model_key_mismatches", "check_model_keys",
    "remove_stale_temps", "check_provenance",
]

logger = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint that must not or could not be written (weights not finite, no room on the disk); the
    message names the file, the cause and the last complete checkpoint, which is kept."""


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


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


def first_nonfinite(state: Mapping[str, Any]) -> Optional[str]:
    """The name of the first floating-point tensor of `state` holding NaN or inf, or None when all are finite."""
    for name, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def _kept(output_dir: str, epoch: int) -> tuple[str, str]:
    """(what is kept, how to go on) for a message about the failed save of 0-based `epoch`: the newest
    checkpoint before it (the files on disk are complete, being written atomically)."""
    earlier = [path for number, path in checkpoint_epochs(output_dir) if number <= epoch]
    if earlier:
        return f"the last complete checkpoint is {earlier[-1]}", "resume from it"
    return "no checkpoint was saved before", "start over"


def _write(state: dict, path: str, output_dir: str, epoch: int) -> None:
    """`atomic_torch_save`, a failed write (disk full, read-only folder) turned into one line; the temporary
    file is removed by the atomic write, so nothing partial stays."""
    try:
        atomic_torch_save(state, path)
    except (OSError, RuntimeError) as e:
        if in_chain(e, KeyboardInterrupt) is not None:  # torch.save reports Ctrl-C as a failed write
            raise KeyboardInterrupt from None
        full = no_room(e)
        os_error = full or in_chain(e, OSError)
        if os_error is None:
            raise
        reason = os_error.strerror or type(os_error).__name__
        what, fix = ("disk full", "make room") if full else ("cannot write", "fix the folder")
        kept, go_on = _kept(output_dir, epoch)
        raise CheckpointWriteError(f"{what} while saving {path} ({reason}); {kept}: {fix}, then rerun the same "
                                   f"command to {go_on}") from None


def save_checkpoint(
    output_dir: str,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    epoch: int,
    cfg: Any = None,
    scaler: Optional[Any] = None,
) -> Optional[str]:
    """Write the checkpoint of 0-based `epoch` (rank 0 only; other ranks return None).

    Every rank first checks that the weights are finite (they are the same on every rank, so all ranks stop
    together): a checkpoint with NaN or inf would be resumed from, averaged and tested as if it were good.
    """
    path = checkpoint_path(output_dir, epoch)
    weights = unwrap(model).state_dict()
    bad = first_nonfinite(weights)
    if bad is not None:
        kept, go_on = _kept(output_dir, epoch)
        raise CheckpointWriteError(
            f"epoch {epoch + 1}: the weights hold NaN or inf (first in {bad}), so {os.path.basename(path)} was not "
            f"written; {kept}: lower SOLVER.BASE_LR or set SOLVER.CLIP_GRAD_L2NORM, then rerun to {go_on}")
    if not du.is_master():
        return None
    state = {
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in weights.items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "cfg": cfg.dump() if hasattr(cfg, "dump") else cfg,
        "env": envu.provenance(),
    }
    _write(state, path, output_dir, epoch)
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
    cfg: Any = None,
) -> int:
    """Load a training checkpoint (model, and optimizer/scaler when given); returns its 0-based epoch (-1 if none).

    With `cfg`, the checkpoint's stored config must define the same model (`check_model_keys`).
    """
    ckpt = read_checkpoint(path)
    if "model_state" not in ckpt:
        raise CheckpointError(f"{path} has no 'model_state' (keys: {', '.join(list(ckpt)[:6])})")
    if cfg is not None:
        check_model_keys(cfg, checkpoint_config(ckpt), path)
    check_provenance(ckpt, path)
    load_model_state(model, ckpt["model_state"], path, strict=strict)
    if optimizer is not None and ckpt.get("optimizer_state") is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer_state"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: optimizer state does not fit ({e})") from None
    if scaler is not None and ckpt.get("scaler_state"):
        scaler.load_state_dict(ckpt["scaler_state"])
    return int(ckpt.get("epoch", -1))


# ----------------------------------------------------------------------------------------------------
# The model a checkpoint was trained as
# ----------------------------------------------------------------------------------------------------

# Keys that define what the weights compute. The same state dict loads under another temporal operator
# (the operators without parameters add no keys) and then scores something else, so these are compared
# with the checkpoint's stored config, not inferred from tensor shapes. Data, class list, NUM_CLASSES,
# views and batch sizes may differ between training and testing and are not listed.
MODEL_KEYS: tuple[str, ...] = ("MODEL.ARCH", OPERATOR_FIELDS["type"], OPERATOR_FIELDS["num_frames"])
# Settings of the temporal operator: compared when both configs use the same operator (not None).
OPERATOR_KEYS: tuple[str, ...] = tuple(OPERATOR_FIELDS[f] for f in OPERATOR_WEIGHT_FIELDS)
# Sizes of the random-init CLIP (MODEL.ARCH custom); its SEED only sets initial values.
CUSTOM_CLIP_KEYS: tuple[str, ...] = tuple(
    f"MODEL.CUSTOM_CLIP.{k}" for k in ("EMBED_DIM", "IMAGE_RESOLUTION", "VISION_PATCH", "VISION_WIDTH",
                                       "VISION_LAYERS", "VISION_HEADS", "TEXT_WIDTH", "TEXT_LAYERS", "TEXT_HEADS")
)
_MISSING = object()


def checkpoint_config(ckpt: Mapping[str, Any]) -> Optional[dict]:
    """The config a checkpoint stores under "cfg" (a YAML string or a mapping), or None when it has none."""
    raw = ckpt.get("cfg")
    if raw is None or raw == "":
        return None
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str):
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None
    return None


def _lookup(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _normal(key: str, value: Any) -> Any:
    """Values as compared: lists and tuples alike, every spelling of "no operator" as None."""
    if isinstance(value, (list, tuple)):
        return [_normal(key, v) for v in value]
    if key == "MODEL.TEMPORAL_MODELING_TYPE" and value in (None, "None", "none", ""):
        return None
    return value


def model_key_mismatches(cfg: Any, ckpt_cfg: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in `cfg`, value in the checkpoint's config) for every model-defining key that differs.

    A key the checkpoint's config lacks (written by an older version) is not compared.
    """
    keys = list(MODEL_KEYS)
    ours = _normal("MODEL.TEMPORAL_MODELING_TYPE", _lookup(cfg, "MODEL.TEMPORAL_MODELING_TYPE"))
    theirs = _normal("MODEL.TEMPORAL_MODELING_TYPE", _lookup(ckpt_cfg, "MODEL.TEMPORAL_MODELING_TYPE"))
    if ours is not None and ours == theirs:
        keys += OPERATOR_KEYS
    if _lookup(cfg, "MODEL.ARCH") == "custom" and _lookup(ckpt_cfg, "MODEL.ARCH") == "custom":
        keys += CUSTOM_CLIP_KEYS
    out = []
    for key in keys:
        mine, stored = _normal(key, _lookup(cfg, key)), _normal(key, _lookup(ckpt_cfg, key))
        if stored is _MISSING or mine is _MISSING:
            continue
        if mine != stored:
            out.append((key, mine, stored))
    return out


def check_model_keys(cfg: Any, ckpt_cfg: Optional[Mapping[str, Any]], source: str) -> None:
    """Refuse weights trained as another model: a CheckpointError naming every differing key with both
    values. A checkpoint without a stored config (older versions) is accepted with a warning.

    The one check behind testing, zero-shot, auto-resume and the demo/inference API: call it with the
    run's config, `checkpoint_config(ckpt)` and the file name.
    """
    if ckpt_cfg is None:
        logger.warning("%s stores no config (written by an older version): its model keys (%s) cannot be "
                       "checked against this config", source, ", ".join(MODEL_KEYS))
        return
    diffs = model_key_mismatches(cfg, ckpt_cfg)
    if diffs:
        listed = "; ".join(f"{k} is {mine!r} here but {stored!r} in the checkpoint" for k, mine, stored in diffs)
        raise CheckpointError(f"{source} was trained as another model: {listed}. Set these keys to the "
                              "checkpoint's values (its config is stored in the file and in its run's config.yaml)")


def check_provenance(ckpt: Mapping[str, Any], source: str) -> list[tuple[str, Any, Any]]:
    """Warn once, naming every difference with both values, when the checkpoint (or averaged file) was made
    under another commit or other package versions than this run; never refuses. Returns the differences
    (none for a file without the record, written by an older version)."""
    diffs = envu.provenance_differences(ckpt.get("env"), envu.provenance())
    if diffs:
        logger.warning("%s", envu.describe_provenance_differences(source, diffs))
    return diffs


_TEMP_CHECKPOINT = re.compile(r"^\.checkpoint_epoch_\d+\.pyth\.[^.]+\.tmp$")


def remove_stale_temps(output_dir: str) -> list[str]:
    """Remove the temporary files a run killed while saving a checkpoint left in OUTPUT_DIR/checkpoints
    (rank 0 at the start of training, before any new save can be in progress); returns their paths."""
    d = checkpoint_dir(output_dir)
    if not du.is_master() or not os.path.isdir(d):
        return []
    removed = []
    for name in sorted(os.listdir(d)):
        if _TEMP_CHECKPOINT.match(name):
            path = os.path.join(d, name)
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
            logger.info("removed %s (left by a run killed while saving)", path)
    return removed
