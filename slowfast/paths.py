"""Folders of this checkout that the code reads: the shipped class lists, templates and splits (`label_db/`)
and the configs. The package is installed in place (`pip install -e .`), so they are found next to it."""

from __future__ import annotations

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL_DB = os.path.join(REPO_ROOT, "label_db")
CONFIGS = os.path.join(REPO_ROOT, "configs")
