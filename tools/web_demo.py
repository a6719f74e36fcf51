#!/usr/bin/env python
"""`tools/web_demo.py` runs `slowfast.cli.web_demo` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.web_demo import main

if __name__ == "__main__":
    raise SystemExit(main())
