#!/usr/bin/env python
"""`tools/run_net.py` runs `slowfast.cli.run_net` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.run_net import main

if __name__ == "__main__":
    raise SystemExit(main())
