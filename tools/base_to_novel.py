#!/usr/bin/env python
"""`tools/base_to_novel.py` runs `slowfast.cli.base_to_novel` (installed as a console command too, see setup.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.base_to_novel import main

if __name__ == "__main__":
    raise SystemExit(main())
