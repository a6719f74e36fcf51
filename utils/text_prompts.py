#!/usr/bin/env python
"""Stage 3 of the text augmentation: extended prompts -> [K, N, E] CLIP text-feature file.

Run with --help for every flag; docs/text_augmentation.md shows the whole pipeline.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from slowfast.cli.text import features_main as main

if __name__ == "__main__":
    sys.exit(main())
