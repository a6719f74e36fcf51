"""Command-line parsing shared by the tools: `--cfg` (repeatable), `--opts KEY VALUE ...`, launch flags."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Optional

from yacs.config import CfgNode

from slowfast.config import load


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


def load_config(args: argparse.Namespace) -> CfgNode:
    """The config of a command line: the --cfg files, then --opts, then the launch flags (`config.load`)."""
    opts = list(args.opts or [])
    for flag, key in (("shard_id", "SHARD_ID"), ("num_shards", "NUM_SHARDS")):  # run_net's launch flags
        if getattr(args, flag, None) is not None:
            opts += [key, getattr(args, flag)]
    return load(args.cfg_files, opts)
