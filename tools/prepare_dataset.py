#!/usr/bin/env python
"""`tools/prepare_dataset.py` runs `slowfast.cli.prepare_dataset` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.prepare_dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
