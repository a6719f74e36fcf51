"""`tools/gpu_check.py` / `stdd-gpu-check`: the prepared GPU check, every part in one run inside a time budget
(the parts and their time shares are in `slowfast.benchmarks.options`, the targets in BENCHMARKS.md, "GPU check").

    python tools/gpu_check.py --device cuda --out output/gpu_check --compile
    python tools/gpu_check.py --device cpu --tiny --out output/gpu_check_cpu     # the CPU dry run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from slowfast.benchmarks.options import PART_SHARES, PARTS, gpu_check_parser
from slowfast.errors import cli_main

__all__ = ["parse_args", "main"]


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    return gpu_check_parser().parse_args(argv)


@cli_main("interrupted: the tables written so far are kept")
def main(argv: Optional[list[str]] = None) -> int:
    """Run the parts in order inside the global budget; exit 1 when a part failed (a timeout is not a failure)."""
    args = parse_args(argv)
    # Imported once the arguments are parsed: torch takes seconds to load, --help and a wrong flag do not wait.
    import torch

    from slowfast.benchmarks.gpu import FULL, TINY, Ctx, Report, run_part

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available (use --device cpu --tiny for the dry run)", file=sys.stderr)
        return 2
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    total = args.max_seconds or (170.0 if args.tiny else 480.0)
    os.makedirs(args.out, exist_ok=True)
    command = "python tools/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = Report(args.out, str(device), command)
    ctx = Ctx(args.out, device, TINY if args.tiny else FULL, report, args.compile, args.peak_tflops)
    parts = [p for p in PARTS if p in args.parts or (p == "compile" and args.compile)]
    start = time.perf_counter()
    with open(os.path.join(args.out, "gpu_check.log"), "a", encoding="utf-8") as log:
        for name in parts:
            left = total - (time.perf_counter() - start)
            cap = min(PART_SHARES[name] * total, left)
            if cap < 0.02 * total:
                report.part(name, name, ["-"])
                report.finish(name, "skipped: no time left in --max-seconds", 0.0)
                continue
            run_part(ctx, name, cap, log)
    print(report.summary())
    print(f"tables and logs in {args.out} ({time.perf_counter() - start:.0f} s)")
    return 1 if any(p["status"].startswith("failed") for p in report.parts.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
