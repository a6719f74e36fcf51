"""Command-line parsing shared by the tools: `--cfg` (repeatable), `--opts KEY VALUE ...`, launch flags."""

from __future__ import annotations

import argparse
from typing import Optional
from collections.abc import Sequence

from yacs.config import CfgNode

from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_file, merge_from_list


def build_parser(description: str = "STDD: zero-shot video action recognition with CLIP.") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--cfg",
        dest="cfg_files",
        action="append",
        default=[],
        help="YAML config file; repeat to merge several in order (later files win).",
    )
    parser.add_argument(
        "--init_method",
        default="tcp://localhost:9999",
        help="torch.distributed init method for multi-process runs (e.g. tcp://host:port); "
        "ignored under torchrun, which sets the environment itself.",
    )
    parser.add_argument("--shard_id", type=int, default=None, help="Index of this machine (overrides SHARD_ID).")
    parser.add_argument(
        "--num_shards", type=int, default=None, help="Number of machines (overrides NUM_SHARDS)."
    )
    parser.add_argument(
        "--opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="Config overrides as KEY VALUE pairs, e.g. --opts NUM_GPUS 0 SOLVER.BASE_LR 1e-4. Must come last.",
    )
    return parser


def parse_args(argv: Optional[Sequence[str]] = None, description: Optional[str] = None) -> argparse.Namespace:
    parser = build_parser(description) if description else build_parser()
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace, cfg_file: Optional[str] = None) -> CfgNode:
    """Defaults, then each --cfg file (or only `cfg_file`), then --opts, then launch flags; then
    `assert_and_infer_cfg`."""
    cfg = get_cfg()
    files = [cfg_file] if cfg_file else list(getattr(args, "cfg_files", []) or [])
    for path in files:
        merge_from_file(cfg, path)
    merge_from_list(cfg, getattr(args, "opts", []) or [])
    if getattr(args, "shard_id", None) is not None:
        cfg.SHARD_ID = args.shard_id
    if getattr(args, "num_shards", None) is not None:
        cfg.NUM_SHARDS = args.num_shards
    assert_and_infer_cfg(cfg)
    return cfg
