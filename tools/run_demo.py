#!/usr/bin/env python
"""`tools/run_demo.py` runs `slowfast.cli.run_demo`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.run_demo import main

if __name__ == "__main__":
    raise SystemExit(main())
