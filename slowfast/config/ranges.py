"""The allowed values of every numeric key (and of the one string key that must not be empty), in one table.

`RANGES` maps a key to a `Rule`: a test of one value and the words that describe it. `assert_and_infer_cfg`
checks every key of the table before the checks that combine keys, so that a value the run would fail on late (a division
by zero, a NaN loss, an empty crop, gradient ascent) is refused at once with the key, the rule and the value.
The types are already checked when a value is merged; a rule also checks the type of list items and of keys
whose default is None. What depends on two keys at once (SHARD_ID < NUM_SHARDS, a width divisible by the
number of heads) is checked by `assert_and_infer_cfg` after the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from yacs.config import CfgNode

from slowfast.config.choices import CLIP_VOCAB_SIZE

__all__ = ["Rule", "RANGES", "first_violation"]


@dataclass(frozen=True)
class Rule:
    """`accepts(value)` is True for an allowed value; `text` completes "config key K must be ..."."""

    text: str
    accepts: Callable[[Any], bool]


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))  # an int may be too large for a float


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(low: int) -> Rule:
    """An int >= `low` (the merge already refuses other types for an int key)."""
    return Rule(f">= {low}", lambda v: _is_int(v) and v >= low)


def number(low: float = 0.0, high: float = math.inf, high_open: bool = False) -> Rule:
    """A finite number in [low, high] (or [low, high) when `high_open`)."""
    if high == math.inf:
        return Rule(f"a finite number >= {low:g}", lambda v: _is_number(v) and v >= low)
    text = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
    return Rule(text, lambda v: _is_number(v) and low <= v and (v < high if high_open else v <= high))


def optional(rule: Rule, meaning: str) -> Rule:
    """None, or a value of `rule` (`meaning` says what None does)."""
    return Rule(f"None or {rule.text} ({meaning})", lambda v: v is None or rule.accepts(v))


def items(each: Callable[[Any], bool], text: str, count: Optional[int] = None) -> Rule:
    """A list of `count` values (when None: any number, at least one), each accepted by `each`."""
    return Rule(text, lambda v: isinstance(v, (list, tuple)) and all(each(x) for x in v)
                and (len(v) == count if count is not None else len(v) > 0))


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


NON_EMPTY_STRING = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")

# Every numeric key of the tree (a test checks that none is missing), in the order of defaults.py.
RANGES: dict[str, Rule] = {
    "NUM_GPUS": integer(0),
    "NUM_SHARDS": integer(1),
    "SHARD_ID": integer(0),
    "NUM_CPU_PROCS": integer(1),
    "RNG_SEED": integer(0),
    "LOG_PERIOD": integer(1),
    "TRAIN.BATCH_SIZE": integer(1),
    "TRAIN.EVAL_PERIOD": integer(1),
    "TRAIN.CHECKPOINT_PERIOD": integer(1),
    "TRAIN.LINEAR_CONNECT_LOSS_RATIO": number(0),
    "TRAIN.LINEAR_CONNECT_SAMPLE_L": number(0, 1),
    "TRAIN.LINEAR_CONNECT_SAMPLE_R": number(0, 1),
    "TEST.BATCH_SIZE": integer(1),
    "TEST.NUM_ENSEMBLE_VIEWS": integer(1),
    "TEST.NUM_SPATIAL_CROPS": integer(1),  # 1 or 3: a choice, checked with the other choices
    "TEST.PATCHING_RATIO": number(0, 1),
    "DATA.PATH_LABEL_SEPARATOR": NON_EMPTY_STRING,
    "DATA.NUM_FRAMES": integer(1),
    "DATA.SAMPLING_RATE": integer(1),
    "DATA.TARGET_FPS": integer(1),
    "DATA.TRAIN_JITTER_SCALES": items(_positive_int, "2 positive ints [min, max]", 2),
    "DATA.TRAIN_CROP_SIZE": integer(1),
    "DATA.TEST_CROP_SIZE": integer(1),
    "DATA.MEAN": items(_is_number, "3 finite numbers (R, G, B)", 3),
    "DATA.STD": items(lambda v: _is_number(v) and v > 0, "3 finite numbers > 0 (R, G, B)", 3),
    "DATA_LOADER.NUM_WORKERS": integer(0),
    "DATA_LOADER.NUM_RETRIES": integer(0),
    "AUG.NUM_SAMPLE": integer(1),  # only 1 is supported: checked with the unsupported options
    "SOLVER.BASE_LR": number(0),
    "SOLVER.WARMUP_START_LR": number(0),
    "SOLVER.COSINE_END_LR": number(0),
    "SOLVER.WARMUP_EPOCHS": number(0),
    "SOLVER.MAX_EPOCH": integer(1),
    "SOLVER.COSINE_RESTART_EPOCH": integer(0),
    "SOLVER.WEIGHT_DECAY": number(0),
    # A negative norm would flip the sign of the gradient: training by gradient ascent.
    "SOLVER.CLIP_GRAD_L2NORM": optional(number(0), "None and 0: no clipping"),
    # torch's Adam refuses betas outside [0, 1) only when the optimiser is built, after model and data.
    "SOLVER.BETAS": items(number(0, 1, high_open=True).accepts, "2 numbers in [0, 1) (beta1, beta2)", 2),
    "SOLVER.MOMENTUM": number(0, 1, high_open=True),
    "MODEL.NUM_CLASSES": integer(1),
    "MODEL.MASK_RATE": number(0, 1, high_open=True),
    "MODEL.MASK_STRIDE": items(_positive_int, "3 positive ints (t, h, w)", 3),
    "MODEL.CHANNEL_FOLD": integer(2),
    "MODEL.TEMPORAL_SCALE": items(_positive_int, "a non-empty list of positive ints"),
    "MODEL.DISTILLATION_RATIO": number(0),
    "MODEL.ENSEMBLE_RAWMODEL_RATIO": number(0, 1),
    "MODEL.CONTEXT_LENGTH": integer(1),
    "MODEL.CUSTOM_CLIP.EMBED_DIM": integer(1),
    "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": integer(1),
    "MODEL.CUSTOM_CLIP.VISION_PATCH": integer(1),
    "MODEL.CUSTOM_CLIP.VISION_WIDTH": integer(1),
    "MODEL.CUSTOM_CLIP.VISION_LAYERS": integer(1),
    "MODEL.CUSTOM_CLIP.VISION_HEADS": integer(1),
    "MODEL.CUSTOM_CLIP.TEXT_WIDTH": integer(1),
    "MODEL.CUSTOM_CLIP.TEXT_LAYERS": integer(1),
    "MODEL.CUSTOM_CLIP.TEXT_HEADS": integer(1),
    # The tokenizer's ids go up to CLIP's BPE vocabulary.
    "MODEL.CUSTOM_CLIP.VOCAB_SIZE": integer(CLIP_VOCAB_SIZE),
    "MODEL.CUSTOM_CLIP.SEED": integer(0),
}


def value_of(cfg: CfgNode, key: str) -> Any:
    """The value of the dotted `key` (e.g. "SOLVER.BASE_LR") in `cfg`."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def first_violation(cfg: CfgNode) -> Optional[str]:
    """The message for the first key of `RANGES` whose value its rule refuses, or None when all pass."""
    for key, rule in RANGES.items():
        value = value_of(cfg, key)
        if not rule.accepts(value):
            shown = list(value) if isinstance(value, tuple) else value
            return f"config key {key} must be {rule.text}, got {shown!r}"
    return None
