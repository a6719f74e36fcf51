"""Atomic file output: readers (and a rerun after a kill) see the old file or the whole new one, never a part.

Everything the project writes that a later step reads (checkpoints, averaged weights, feature files, CSV
lists, YAML, reports) goes through `atomic_output`: a temporary file `.<name>.<random>.tmp` in the target's
folder, flushed to disk, given the usual permissions, then renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import IO, Any
from collections.abc import Iterator


def temp_prefix(path: str) -> str:
    """The name prefix of `path`'s temporary files (for cleaning up after a killed run)."""
    return f".{os.path.basename(path)}."


@contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`mode` "w" or "wb"); on success it replaces `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str) -> None:
    with atomic_output(path, "w") as f:
        f.write(text)


def atomic_torch_save(obj: Any, path: str) -> None:
    import torch

    with atomic_output(path, "wb") as f:
        torch.save(obj, f)


def atomic_savefig(fig: Any, path: str, **kwargs: Any) -> None:
    """Save a matplotlib figure (format from `path`'s extension)."""
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    with atomic_output(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)
