"""Keys accepted for compatibility: each is in the tree so that configs and command lines written for the
original code keep working, and none changes what a run does.

They are listed once, here. `tools/config_reference.py` marks them in docs/config_reference.md, and the
first start of a run logs one line for each one set to a value other than its default (`notes`).
A key whose only accepted value is its default (the others are refused by `assert_and_infer_cfg`) is
listed too: setting it to that value changes nothing.
"""

from __future__ import annotations

from yacs.config import CfgNode

from slowfast.config.defaults import get_cfg
from slowfast.config.ranges import value_of

__all__ = ["ACCEPTED_FOR_COMPATIBILITY", "notes"]

ACCEPTED_FOR_COMPATIBILITY: tuple[str, ...] = (
    "TRAIN.DATASET",
    "TEST.DATASET",
    "DATA.DECODING_BACKEND",
    "AUG.ENABLE",
    "AUG.NUM_SAMPLE",
    "MIXUP.ENABLE",
    "SOLVER.BASE_LR_SCALE_NUM_SHARDS",
)


def notes(cfg: CfgNode) -> list[str]:
    """One line per key of the list that `cfg` sets to a value other than its default."""
    defaults = get_cfg()
    return [f"{key} {value_of(cfg, key)!r} is accepted for compatibility and changes nothing "
            f"(docs/config_reference.md)"
            for key in ACCEPTED_FOR_COMPATIBILITY if value_of(cfg, key) != value_of(defaults, key)]
