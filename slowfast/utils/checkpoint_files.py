"""Where checkpoints live and how they are named (no torch, no process group): shared by checkpoint I/O
and by the launcher, which names the checkpoint to resume from when a process dies.

`OUTPUT_DIR/checkpoints/checkpoint_epoch_{epoch+1:05d}.pyth`, 1-based in the name as the original's.
"""

from __future__ import annotations

import os
import re

__all__ = ["CHECKPOINT_NAME", "checkpoint_dir", "checkpoint_path", "list_checkpoints"]

CHECKPOINT_NAME = re.compile(r"^checkpoint_epoch_(\d+)\.pyth$")


def checkpoint_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "checkpoints")


def checkpoint_path(output_dir: str, epoch: int) -> str:
    """Path of the checkpoint saved after 0-based `epoch` (the file name is 1-based, as the original's)."""
    return os.path.join(checkpoint_dir(output_dir), f"checkpoint_epoch_{epoch + 1:05d}.pyth")


def checkpoint_epochs(output_dir: str) -> list[tuple[int, str]]:
    """(epoch as in the file name, 1-based; path) of each checkpoint in OUTPUT_DIR/checkpoints, oldest first
    (by the number, not the string)."""
    d = checkpoint_dir(output_dir)
    if not os.path.isdir(d):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(d) if (m := CHECKPOINT_NAME.match(name))]
    return [(epoch, os.path.join(d, name)) for epoch, name in sorted(found)]


def list_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint files in OUTPUT_DIR/checkpoints, oldest epoch first (by the number, not the string)."""
    return [path for _, path in checkpoint_epochs(output_dir)]
