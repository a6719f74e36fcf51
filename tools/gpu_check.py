#!/usr/bin/env python
"""The GPU check: `python tools/gpu_check.py --device cuda --out output/gpu_check` (about 8 minutes on one H100).

Proves the CUDA path (pytest -m cuda) and measures throughput, memory, MFU, the loader, a 1-epoch training
against the CPU, and bf16 vs fp16 training; every table is written to --out as it is measured.
`--device cpu --tiny` is the dry run (every part with tiny sizes, under 3 minutes). See
slowfast/benchmarks/gpu.py for the parts.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.gpu_check import main

if __name__ == "__main__":
    raise SystemExit(main())
