"""The weights a model is tested with, in one place: choose the file (`select_test_weights`), read it, check
that it was trained as this model (its stored config's model keys, and the environment it was made in), patch
it toward raw CLIP when TEST.PATCHING_MODEL, and load it (`load_test_weights`). The test loop, the zero-shot
and base-to-novel protocols and `VideoClassifier` all call `load_test_weights`.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch
from torch import nn

from slowfast.averaging import patch_state_dict
from slowfast.clip import CLIPWeightsError
from slowfast.engine.results import LoadedWeights
from slowfast.errors import UserError
from slowfast.models import clip_weights_from_cfg
from slowfast.utils import checkpoint as cu

__all__ = ["select_test_weights", "load_test_weights"]

logger = logging.getLogger(__name__)


def select_test_weights(cfg) -> tuple[Optional[str], str]:
    """(file, how) of the weights to test, in the original code's order:
    TEST.CUSTOM_LOAD_FILE, TEST.CHECKPOINT_FILE_PATH, the newest checkpoint in OUTPUT_DIR/checkpoints,
    TRAIN.CHECKPOINT_FILE_PATH; (None, "initial") when there is none.

    TEST.CUSTOM_LOAD_FILE is used whenever it is set: the original code ignored it without
    TEST.CUSTOM_LOAD True and silently tested other weights (often the initial ones).
    """
    if cfg.TEST.CUSTOM_LOAD_FILE and not cfg.TEST.CUSTOM_LOAD:
        logger.info("TEST.CUSTOM_LOAD_FILE is set: testing it (TEST.CUSTOM_LOAD False does not turn it off)")
    if cfg.TEST.CUSTOM_LOAD or cfg.TEST.CUSTOM_LOAD_FILE:
        if not cfg.TEST.CUSTOM_LOAD_FILE:
            raise UserError("TEST.CUSTOM_LOAD True needs TEST.CUSTOM_LOAD_FILE (a trained or averaged checkpoint)")
        if not os.path.isfile(cfg.TEST.CUSTOM_LOAD_FILE):
            raise cu.CheckpointError(f"TEST.CUSTOM_LOAD_FILE not found: {cfg.TEST.CUSTOM_LOAD_FILE}")
        return cfg.TEST.CUSTOM_LOAD_FILE, "TEST.CUSTOM_LOAD_FILE"
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        if not os.path.isfile(cfg.TEST.CHECKPOINT_FILE_PATH):
            raise cu.CheckpointError(f"TEST.CHECKPOINT_FILE_PATH not found: {cfg.TEST.CHECKPOINT_FILE_PATH}")
        return cfg.TEST.CHECKPOINT_FILE_PATH, "TEST.CHECKPOINT_FILE_PATH"
    last = cu.last_checkpoint(cfg.OUTPUT_DIR)
    if last:
        return last, "newest checkpoint in OUTPUT_DIR"
    if cfg.TRAIN.CHECKPOINT_FILE_PATH:
        if not os.path.isfile(cfg.TRAIN.CHECKPOINT_FILE_PATH):
            raise cu.CheckpointError(f"TRAIN.CHECKPOINT_FILE_PATH not found: {cfg.TRAIN.CHECKPOINT_FILE_PATH}")
        return cfg.TRAIN.CHECKPOINT_FILE_PATH, "TRAIN.CHECKPOINT_FILE_PATH"
    return None, "initial"


def _patch_clip_state(cfg, initial_clip: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The CLIP weights TEST.PATCHING_MODEL interpolates toward: TEST.CLIP_ORI_PATH (a CLIP file, or a
    checkpoint whose model_state `model.*` keys are used, as the original's fallback), else the backbone's
    own initial weights."""
    path = cfg.TEST.CLIP_ORI_PATH
    if not path:
        return initial_clip
    try:
        return dict(clip_weights_from_cfg(cfg, path).state_dict)  # a file, an open_clip tag or hf-hub:ORG/NAME
    except CLIPWeightsError:
        ckpt = cu.read_checkpoint(path)
        if "model_state" not in ckpt:
            raise
        return {k[len("model."):]: v for k, v in ckpt["model_state"].items() if k.startswith("model.")}


def load_test_weights(cfg, model: nn.Module, initial_clip: Optional[dict] = None) -> LoadedWeights:
    """Load the weights `select_test_weights` picks (non-strict, unexpected keys reported), patched
    toward raw CLIP when TEST.PATCHING_MODEL. Returns {"file", "how", "missing", "unexpected", "patched"}."""
    path, how = select_test_weights(cfg)
    info: LoadedWeights = {"file": path, "how": how, "missing": [], "unexpected": [], "patched": False}
    if path is None:
        logger.warning("no checkpoint found (TEST.CHECKPOINT_FILE_PATH, %s, TRAIN.CHECKPOINT_FILE_PATH): testing "
                       "the initial weights", cu.checkpoint_dir(cfg.OUTPUT_DIR))
        return info
    ckpt = cu.read_checkpoint(path)
    state = ckpt.get("model_state")
    if state is None:
        raise cu.CheckpointError(f"{path} has no 'model_state' (keys: {', '.join(list(ckpt)[:6])})")
    cu.check_model_keys(cfg, cu.checkpoint_config(ckpt), path)
    cu.check_provenance(ckpt, path)
    if cfg.TEST.PATCHING_MODEL:
        clip_state = _patch_clip_state(cfg, initial_clip or {})
        state = patch_state_dict(state, clip_state, float(cfg.TEST.PATCHING_RATIO))
        info["patched"] = True
        logger.info("patched the CLIP weights of %s with ratio %.3f toward %s", path, cfg.TEST.PATCHING_RATIO,
                    cfg.TEST.CLIP_ORI_PATH or "the backbone's initial weights")
    missing, unexpected = cu.load_model_state(model, state, path, strict=False)
    info["missing"], info["unexpected"] = missing, unexpected
    logger.info("loaded %s (%s)", path, how)
    if unexpected:
        logger.warning("%d keys of %s are not in the model (ignored), e.g. %s", len(unexpected), path,
                       ", ".join(unexpected[:5]))
    student_missing = [k for k in missing if k.startswith("model.visual.")]
    if student_missing:
        logger.warning("%d student keys are missing from %s and keep their initial values, e.g. %s",
                       len(student_missing), path, ", ".join(student_missing[:5]))
    return info
