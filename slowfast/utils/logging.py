"""What a user reads: `stdout.log`, `json_stats.log`, TensorBoard scalars and a tqdm bar (rank 0 only).

Other ranks log warnings and errors only, so a multi-process run prints each line once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterable
from typing import Any, Optional

__all__ = ["setup_logging", "log_json_stats", "TensorboardWriter", "progress_bar", "format_seconds"]

_FMT = "[%(asctime)s][%(levelname)s] %(name)s: %(message)s"
_JSON_FILE: Optional[str] = None


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is when a record is emitted, not to the stream it was when the handler
    was made: a caller that redirects or captures stdout for a while (a notebook, a test) then closes that
    stream does not leave the log writing into a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler's constructor assigns it; the property always follows sys.stdout
        pass


def setup_logging(output_dir: Optional[str], is_master: bool = True) -> None:
    """Configure the root logger: stdout (and OUTPUT_DIR/stdout.log, json_stats.log) on the master."""
    global _JSON_FILE
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_stdd", False):
            root.removeHandler(h)
            h.close()
    root.setLevel(logging.INFO if is_master else logging.WARNING)
    fmt = logging.Formatter(_FMT, datefmt="%H:%M:%S")
    console = _StdoutHandler()
    console.setFormatter(fmt)
    console._stdd = True  # type: ignore[attr-defined]
    root.addHandler(console)
    _JSON_FILE = None
    if is_master and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(output_dir, "stdout.log"), encoding="utf-8")
        fh.setFormatter(fmt)
        fh._stdd = True  # type: ignore[attr-defined]
        root.addHandler(fh)
        _JSON_FILE = os.path.join(output_dir, "json_stats.log")


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, 6) if abs(v) >= 1e-4 else float(f"{v:.6g}")
    return v


def log_json_stats(stats: dict, logger: Optional[logging.Logger] = None) -> None:
    """One JSON line, as in PySlowFast (`json_stats: {...}`), to the log and to OUTPUT_DIR/json_stats.log."""
    line = json.dumps({k: _clean(v) for k, v in stats.items()}, sort_keys=False)
    (logger or logging.getLogger("slowfast")).info("json_stats: %s", line)
    if _JSON_FILE:
        with open(_JSON_FILE, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class TensorboardWriter:
    """Scalars to TensorBoard when enabled (master only); a no-op object otherwise."""

    def __init__(self, log_dir: Optional[str], enabled: bool):
        self._writer = None
        if enabled and log_dir:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=log_dir)

    def add_scalars(self, scalars: dict, step: int, prefix: str = "") -> None:
        if self._writer is None:
            return
        for k, v in scalars.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self._writer.add_scalar(f"{prefix}{k}", v, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


def progress_bar(iterable: Iterable, total: Optional[int], desc: str, enabled: bool):
    """A tqdm bar with ETA on stderr when `enabled` (rank 0 and an interactive or logged run)."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr,
                mininterval=1.0)


def format_seconds(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"
