"""Prompt-template files, one per dataset, and the choice of which one a feature file is built with.

The original work built each dataset's text features with that dataset's own templates: the eight
"human action" sentences for Kinetics-400 and UCF101, the first eight of the 28 standard CLIP video
templates for HMDB51. `label_db/templates/<dataset>.yml` holds those sets. A templates file is a YAML
mapping with a `templates` list of sentences holding one `{}` each, so the original
`classes_label_<dataset>.yml` files are accepted as they are.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Optional

from slowfast.paths import LABEL_DB
from slowfast.text.schema import SchemaError, load_yaml_file

logger = logging.getLogger(__name__)

DATASETS = ("k400", "k600", "ucf101", "hmdb51")
DEFAULT_DATASET = "k400"
# Substrings of a class-index file name (lower case, without "-", "_", " ") that name its dataset;
# Kinetics-600 is tested before the generic "kinetics".
_NAME_HINTS = (("hmdb", "hmdb51"), ("ucf", "ucf101"), ("k600", "k600"), ("kinetics600", "k600"),
               ("k400", "k400"), ("kinetics", "k400"))


def templates_file_for(dataset: str) -> str:
    """`label_db/templates/<dataset>.yml` of this checkout."""
    if dataset not in DATASETS:
        raise SchemaError(f"unknown dataset {dataset!r} for templates; choose one of {', '.join(DATASETS)}")
    return os.path.join(LABEL_DB, "templates", f"{dataset}.yml")


def default_templates_file(dataset: str = DEFAULT_DATASET) -> str:
    """The shipped templates file of `dataset` (Kinetics-400 when none is named)."""
    return templates_file_for(dataset)


def infer_dataset(class_index_path: str) -> Optional[str]:
    """The dataset a class-index file belongs to, read from its file name (then its folder's), else None."""
    for part in (os.path.basename(class_index_path), os.path.basename(os.path.dirname(class_index_path))):
        key = re.sub(r"[-_\s]", "", part.lower())
        for hint, dataset in _NAME_HINTS:
            if hint in key:
                return dataset
    return None


def choose_templates_file(templates_file: Optional[str], dataset: Optional[str], class_index_path: str) -> tuple[str, str]:
    """`(path, why)`: an explicit file wins, then `dataset`, then the dataset named by the class-index file.

    A class list no name hint recognises gets the Kinetics-400 set with a warning, since a custom
    dataset of human actions is closest to it.
    """
    if templates_file:
        return templates_file, "--templates-file"
    if dataset:
        return templates_file_for(dataset), f"--dataset {dataset}"
    guessed = infer_dataset(class_index_path)
    if guessed:
        return templates_file_for(guessed), f"dataset {guessed}, from the class-index file name"
    logger.warning("no dataset recognised in the class-index file name %r; using the %s templates (pass --dataset "
                   "or --templates-file to choose)", os.path.basename(class_index_path), DEFAULT_DATASET)
    return templates_file_for(DEFAULT_DATASET), f"dataset {DEFAULT_DATASET}, the default"


def load_templates(path: str, num_templates: Optional[int] = 8) -> list[str]:
    """The first `num_templates` entries of the file's `templates` list; each must hold one `{}`."""
    data = load_yaml_file(path)
    templates = data.get("templates") if isinstance(data, Mapping) else None
    if not isinstance(templates, list) or not templates:
        raise SchemaError(f"{path}: expected a key 'templates' holding a list of sentences with '{{}}'")
    for i, t in enumerate(templates):
        if not isinstance(t, str) or t.count("{}") != 1:
            raise SchemaError(f"{path}: templates[{i}] = {t!r} must be a string with exactly one '{{}}'")
    if num_templates is not None:
        if num_templates < 1 or num_templates > len(templates):
            raise SchemaError(f"{path} has {len(templates)} templates; --num-templates {num_templates} is out of range")
        templates = templates[:num_templates]
    return list(templates)
