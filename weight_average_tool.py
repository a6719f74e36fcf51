#!/usr/bin/env python
"""`weight_average_tool.py` runs `slowfast.cli.average` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from slowfast.cli.average import main

if __name__ == "__main__":
    raise SystemExit(main())
