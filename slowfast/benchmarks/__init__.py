"""Benchmarks behind `tools/benchmark.py` (one module per subcommand), the GPU check's parts, and the
BENCHMARKS.md writer.

Developer tooling, kept inside the installed package on purpose: the benchmarks time the library's own code
paths (the real loader, model and averaging), and the GPU check must run on a bare GPU machine from the same
install as the code it measures. Nothing else in the package imports it; it writes BENCHMARKS.md only when
asked (`--append`).
"""

from __future__ import annotations

import datetime
import os
import platform


def environment_line(device: str = "cpu") -> str:
    """One line naming the device, torch version, threads and date, for the head of a results table."""
    import torch  # here, so that importing a benchmark's light parts does not load torch

    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.cuda.get_device_name(torch.device(device))
    else:
        dev = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return f"device: {dev}; torch {torch.__version__}; date {datetime.date.today().isoformat()}"


def append_to_benchmarks_md(title: str, body_markdown: str, command: str, path: str = "BENCHMARKS.md") -> None:
    """Append a section (title, the command that produced it, the table) to BENCHMARKS.md."""
    section = f"\n## {title}\n\nCommand: `{command}`\n\n{body_markdown.rstrip()}\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(section)
