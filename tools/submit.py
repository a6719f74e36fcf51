#!/usr/bin/env python
"""`tools/submit.py` runs `slowfast.cli.submit` (installed as the console command `stdd-submit` too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.submit import main

if __name__ == "__main__":
    raise SystemExit(main())
