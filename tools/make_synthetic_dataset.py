#!/usr/bin/env python
"""`tools/make_synthetic_dataset.py` runs `slowfast.cli.make_synthetic_dataset`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.make_synthetic_dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
