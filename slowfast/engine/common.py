"""Run helpers shared by training, testing and classification: seeding, mixed precision, the start of a run
(its output folder, config and environment record, the head of its log), and the checks that run before the
expensive part (output folder, GPU count, test list), each failing as one `UserError` line."""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Optional

import numpy as np
import torch
from yacs.config import CfgNode

from slowfast.config import compatibility
from slowfast.config.choices import MIXED_PRECISION_DTYPES
from slowfast.datasets.loader import dataset_csv_path
from slowfast.datasets.video_list import read_video_csv
from slowfast.errors import UserError
from slowfast.models import check_model_config
from slowfast.utils import checkpoint as cu
from slowfast.utils import distributed as du
from slowfast.utils import env as envu
from slowfast.utils import logging as lu
from slowfast.utils.atomic import atomic_write_text, make_writable_dir
from slowfast.utils.seeding import derive_seed

__all__ = ["seed_everything", "amp_settings", "autocast_dtype", "prepare_output_dir", "write_run_config", "start_run",
           "preflight", "check_top_k", "check_test_list"]

logger = logging.getLogger(__name__)


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


def write_run_config(cfg: CfgNode, env_info: Optional[dict[str, Any]] = None) -> str:
    """Write the merged config to OUTPUT_DIR/config.yaml and, beside it, where the run ran to env.json and
    env.txt (`env_info`, collected here when not given); atomically, rank 0. Returns the config's path.

    They are the record of what a run did and on what, and what `TEST.CHECKPOINT_FILE_PATH` users compare
    against (`stdd-env --diff A/env.json B/env.json`, docs/reproducing.md).
    """
    path = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    if du.is_master():
        atomic_write_text(path, cfg.dump())
        envu.write_env_files(cfg.OUTPUT_DIR, env_info or envu.collect_env(seed=cfg.RNG_SEED))
    return path


def prepare_output_dir(cfg: CfgNode, training: bool, env_info: Optional[dict[str, Any]] = None) -> None:
    """Create OUTPUT_DIR (and its checkpoint folder when training), check both are writable, and write
    OUTPUT_DIR/config.yaml, env.json and env.txt: an unusable output folder stops the run before any work,
    not after an epoch."""
    if du.is_master():
        make_writable_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR")
        if training:
            make_writable_dir(cu.checkpoint_dir(cfg.OUTPUT_DIR), "checkpoint folder")
    write_run_config(cfg, env_info)


def start_run(cfg: CfgNode, training: bool) -> None:
    """The start of every training and test run (and so of the zero-shot, base-to-novel and demo runs made
    of them): `prepare_output_dir`, then the log, whose first lines name the commit, torch/CUDA and the GPUs,
    then (at the run's first start: training, or a test-only run) each key set that changes nothing."""
    info = envu.collect_env(seed=cfg.RNG_SEED) if du.is_master() else None
    prepare_output_dir(cfg, training, info)
    lu.setup_logging(cfg.OUTPUT_DIR, du.is_master())
    for line in envu.summary_lines(info) if info else []:
        logger.info("%s", line)
    for line in compatibility.notes(cfg) if training or not cfg.TRAIN.ENABLE else []:
        logger.info("%s", line)


def check_test_list(cfg: CfgNode) -> None:
    """The test list of a train-then-test run is read before training (`train` calls this once the model
    is built): an empty or malformed list would otherwise stop the run only after the last epoch."""
    read_video_csv(dataset_csv_path(cfg, "test"), cfg.DATA.PATH_LABEL_SEPARATOR, "")


def preflight(cfg: CfgNode) -> None:
    """Checks that need the machine or the files rather than the config alone, done once in the
    launching process before any process is spawned or model built (each fails with one line)."""
    du.check_devices(cfg)
    check_model_config(cfg)
    prepare_output_dir(cfg, training=cfg.TRAIN.ENABLE)


def check_top_k(top_k: int, num_classes: int | None = None, name: str = "--top-k") -> int:
    """`top_k` for a prediction list: a positive int (capped at `num_classes`: a larger one asks for every
    class); UserError naming the flag or argument `name` otherwise.

    The one rule of `VideoClassifier` (`top_k`) and the command-line tools that print the k best classes
    (e.g. `tools/demo_net.py --top-k`).
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise UserError(f"{name} must be a positive integer, got {top_k!r}")
    return min(top_k, num_classes) if num_classes else top_k
