#!/usr/bin/env python
"""`tools/zero_shot.py` runs `slowfast.cli.zero_shot` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.zero_shot import main

if __name__ == "__main__":
    raise SystemExit(main())
