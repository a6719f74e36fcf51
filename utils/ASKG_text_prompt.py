#!/usr/bin/env python
"""Stage 1 of the text augmentation: class names -> ASKG YAML (one LLM request per class).

Run with --help for every flag; docs/text_augmentation.md shows the whole pipeline.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.text import askg_main as main

if __name__ == "__main__":
    sys.exit(main())
