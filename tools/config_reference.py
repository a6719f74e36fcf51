#!/usr/bin/env python
"""`tools/config_reference.py` runs `slowfast.cli.config_reference`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.config_reference import main

if __name__ == "__main__":
    raise SystemExit(main())
