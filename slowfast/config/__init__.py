"""Configuration: the default tree (`defaults.get_cfg`), strict merging of YAML files and overrides, and
`assert_and_infer_cfg`, which checks what types cannot and fills in what follows from the values."""

from __future__ import annotations

import ast
import difflib
import os
from collections.abc import Iterable, Sequence
from typing import IO, Any, Union

import yaml
from yacs.config import CfgNode

from slowfast.config import choices, ranges
from slowfast.config.defaults import get_cfg
from slowfast.config.yaml_files import RepeatedKeyError, safe_load_unique
from slowfast.errors import UserError

__all__ = [
    "ConfigError",
    "get_cfg",
    "merge_from_file",
    "merge_from_list",
    "merge_dict",
    "assert_and_infer_cfg",
    "all_keys",
    "load",
]


class ConfigError(UserError, ValueError):
    """A configuration problem, with a message that names the key (and file) at fault."""


def all_keys(cfg: CfgNode, prefix: str = "") -> list[str]:
    """Every leaf key of `cfg` as a dotted path, in definition order."""
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        if isinstance(v, CfgNode):
            keys.extend(all_keys(v, full + "."))
        else:
            keys.append(full)
    return keys


def _closest(key: str, cfg: CfgNode) -> list[str]:
    candidates = all_keys(cfg)
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if not close:
        leaf = key.split(".")[-1]
        by_leaf = {c.split(".")[-1]: c for c in candidates}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.6)]
    return close


def _unknown_key(key: str, root: CfgNode, source: str) -> ConfigError:
    close = _closest(key, root)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key}{source}{hint}")


def _type_name(v: Any) -> str:
    return "None" if v is None else type(v).__name__


# Numeric keys whose default is None (off): a string value that reads as a number is stored as one when
# merged, so that a later file or option can set it again with a number.
_NUMBERS_OFF_BY_DEFAULT = frozenset({"SOLVER.CLIP_GRAD_L2NORM"})


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    """Return `value` converted to the type of `default`, or raise a ConfigError naming both types."""
    if isinstance(value, CfgNode) or isinstance(default, CfgNode):
        raise ConfigError(
            f"config key {key}{source}: expected {_type_name(default)}, got {_type_name(value)}"
        )
    if default is None or value is None:
        # Keys whose default is None take a string, number or list; a None value clears any key
        # that may be None (only those whose default is None or a string path/choice).
        if value is None and default is not None and not isinstance(default, str):
            raise ConfigError(f"config key {key}{source}: expected {_type_name(default)}, got None")
        if key in _NUMBERS_OFF_BY_DEFAULT and isinstance(value, str):  # YAML 1.1 reads "1e-1" as a string
            try:
                return float(value)
            except ValueError:
                pass  # refused by the range table, naming the key and the value
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    raise ConfigError(
        f"config key {key}{source}: expected {_type_name(default)}, got {_type_name(value)} ({value!r})"
    )


def _set(cfg: CfgNode, key: str, value: Any, source: str, root: CfgNode) -> None:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        if p not in node or not isinstance(node[p], CfgNode):
            raise _unknown_key(key, root, source)
        node = node[p]
    leaf = parts[-1]
    if leaf not in node:
        raise _unknown_key(key, root, source)
    if isinstance(node[leaf], CfgNode):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key}{source}: expected a mapping, got {_type_name(value)}")
        for k, v in value.items():
            _set(cfg, f"{key}.{k}", v, source, root)
        return
    node[leaf] = _coerce(value, node[leaf], key, source)


def merge_dict(cfg: CfgNode, values: dict, source: str = "") -> CfgNode:
    """Merge a nested mapping into `cfg` with the strict key and type checks."""
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    try:
        for k, v in values.items():
            _set(cfg, str(k), v, source, cfg)
    finally:
        if was_frozen:
            cfg.freeze()
    return cfg


def _read_yaml(stream: IO[str], path: str) -> Any:
    """`yaml.safe_load`, refusing a key repeated in one mapping (YAML would silently keep the last one)."""
    try:
        return safe_load_unique(stream)
    except RepeatedKeyError as e:
        raise ConfigError(f"config file {path}: {e}; YAML would keep only the last value: keep one") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None


def merge_from_file(cfg: CfgNode, path: str, _including: tuple[str, ...] = ()) -> CfgNode:
    """Merge a YAML file; `_BASE_: other.yaml` (relative to the file), or a list of such files merged in
    order, comes first. A chain of `_BASE_` files that comes back to a file it includes is refused, naming
    the chain."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    real = os.path.realpath(path)
    if real in _including:
        chain = " -> ".join([*_including, real])
        raise ConfigError(f"config file {path} includes itself through _BASE_: {chain}")
    with open(path, encoding="utf-8") as f:
        data = _read_yaml(f, path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    base = data.pop("_BASE_", None)
    bases = [base] if isinstance(base, str) else base
    if base and not (isinstance(bases, list) and all(isinstance(b, str) and b for b in bases)):
        raise ConfigError(f"config file {path}: _BASE_ must be a file name or a list of file names, got {base!r}")
    for name in bases or []:  # in order: later files win
        merge_from_file(cfg, os.path.join(os.path.dirname(path), name), (*_including, real))
    return merge_dict(cfg, data, source=f" (in {path})")


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def merge_from_list(cfg: CfgNode, opts: Sequence[str]) -> CfgNode:
    """Merge `KEY VALUE KEY VALUE ...` overrides; values are parsed as Python literals when possible."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f"--opts needs KEY VALUE pairs; {opts[-1]!r} has no value")
    for key, text in zip(opts[0::2], opts[1::2]):
        merge_dict(cfg, {key: _parse_value(text)}, source=" (in --opts)")
    return cfg


def _choice(key: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"config key {key}: {value!r} is not one of {', '.join(map(repr, allowed))}")


def _infer_temporal_type(cfg: CfgNode) -> None:
    """Store every spelling of "no operator" as None, and refuse unknown operators with a suggestion."""
    tmt = cfg.MODEL.TEMPORAL_MODELING_TYPE = choices.normalize_temporal_type(cfg.MODEL.TEMPORAL_MODELING_TYPE)
    if tmt not in choices.TEMPORAL_TYPES:
        named = [t for t in choices.TEMPORAL_TYPES if t]
        hint = difflib.get_close_matches(str(tmt), named, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(
            f"config key MODEL.TEMPORAL_MODELING_TYPE: unknown temporal operator {tmt!r}{extra}; "
            f"valid: None, {', '.join(named)}"
        )


def _assert_choices(cfg: CfgNode) -> None:
    # MODEL.ARCH also takes any open_clip model name (RN50 has no "-"): `slowfast.clip.check_arch` refuses
    # the unknown and unusable ones, with close matches and the reason, before a run starts.
    _choice("MODEL.LOSS_FUNC", cfg.MODEL.LOSS_FUNC, choices.LOSSES)
    _choice("MODEL.STCROSS_MLP_INPUT", cfg.MODEL.STCROSS_MLP_INPUT, choices.STCROSS_MLP_INPUTS)
    _choice("DATA.DECODING_BACKEND", cfg.DATA.DECODING_BACKEND, ("pyav",))
    _choice("TRAIN.DATASET", cfg.TRAIN.DATASET.lower(), choices.DATASET_NAMES)
    _choice("TEST.DATASET", cfg.TEST.DATASET.lower(), choices.DATASET_NAMES)
    _choice("DATA.ENSEMBLE_METHOD", cfg.DATA.ENSEMBLE_METHOD, choices.ENSEMBLE_METHODS)
    _choice("TRAIN.MIXED_PRECISION_DTYPE", cfg.TRAIN.MIXED_PRECISION_DTYPE, choices.MIXED_PRECISION_DTYPES)
    _choice("SOLVER.OPTIMIZING_METHOD", cfg.SOLVER.OPTIMIZING_METHOD, ("adamw", "sgd"))
    _choice("SOLVER.LR_POLICY", cfg.SOLVER.LR_POLICY, ("cosine", "constant"))
    _choice("TEST.NUM_SPATIAL_CROPS", cfg.TEST.NUM_SPATIAL_CROPS, (1, 3))


def _assert_model(cfg: CfgNode) -> None:
    if cfg.AUG.ENABLE or cfg.MIXUP.ENABLE or cfg.AUG.NUM_SAMPLE != 1:
        raise ConfigError(
            "AUG.ENABLE / MIXUP.ENABLE / AUG.NUM_SAMPLE != 1 are not supported: STDD trains without "
            "RandAugment, mixup or repeated sampling (set AUG.ENABLE False, MIXUP.ENABLE False, AUG.NUM_SAMPLE 1)"
        )
    if cfg.MODEL.RAW_MODEL_DISTILLATION and not cfg.MODEL.KEEP_RAW_MODEL:
        raise ConfigError("MODEL.RAW_MODEL_DISTILLATION True needs MODEL.KEEP_RAW_MODEL True (the teacher)")
    if cfg.MODEL.ENSEMBLE_PRED and not cfg.MODEL.KEEP_RAW_MODEL:
        raise ConfigError("MODEL.ENSEMBLE_PRED True needs MODEL.KEEP_RAW_MODEL True")
    stride = list(cfg.MODEL.MASK_STRIDE)
    if cfg.MODEL.TEMPORAL_MODELING_TYPE == "stcross_attend" and stride[0] != 1:
        # No corrected stride is suggested: whether a window fits depends on the CLIP's patch grid, which the
        # model names when it is built.
        raise ConfigError(f"config key MODEL.MASK_STRIDE {stride}: stcross_attend masks within each frame, so "
                          f"the temporal stride (the first entry) must be 1, got {stride[0]}")
    if cfg.MODEL.ARCH == choices.CUSTOM_ARCH:
        _assert_custom_clip(cfg.MODEL.CUSTOM_CLIP)


def _assert_custom_clip(c: CfgNode) -> None:
    """The sizes of the random-init CLIP that depend on each other (each is >= 1 by `ranges.RANGES`): checked
    here, where the message can name the keys (the towers would stop with a bare assertion)."""
    for width, heads in (("VISION_WIDTH", "VISION_HEADS"), ("TEXT_WIDTH", "TEXT_HEADS")):
        if c[width] % c[heads]:
            raise ConfigError(f"config key MODEL.CUSTOM_CLIP.{width} ({c[width]}) must be divisible by "
                              f"MODEL.CUSTOM_CLIP.{heads} ({c[heads]})")
    if c.IMAGE_RESOLUTION % c.VISION_PATCH:
        raise ConfigError(f"config key MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION ({c.IMAGE_RESOLUTION}) must be a multiple of "
                          f"MODEL.CUSTOM_CLIP.VISION_PATCH ({c.VISION_PATCH})")


def _assert_ordered(cfg: CfgNode) -> None:
    """Bounds given by two values: a lower one may not exceed the upper one."""
    lo, hi = cfg.DATA.TRAIN_JITTER_SCALES
    if not lo <= hi or cfg.DATA.TRAIN_CROP_SIZE > lo:
        raise ConfigError(
            f"DATA.TRAIN_JITTER_SCALES {list(cfg.DATA.TRAIN_JITTER_SCALES)} must be [min, max] with "
            f"min <= max and min >= DATA.TRAIN_CROP_SIZE ({cfg.DATA.TRAIN_CROP_SIZE})"
        )
    low, high = cfg.TRAIN.LINEAR_CONNECT_SAMPLE_L, cfg.TRAIN.LINEAR_CONNECT_SAMPLE_R
    if low > high:
        raise ConfigError(f"TRAIN.LINEAR_CONNECT_SAMPLE_L ({low}) must be <= TRAIN.LINEAR_CONNECT_SAMPLE_R ({high})")


def _assert_ranges(cfg: CfgNode) -> None:
    """Every numeric key against its rule in `ranges.RANGES` (finite, >= 0, in [0, 1], an integer >= 1, ...)."""
    problem = ranges.first_violation(cfg)
    if problem:
        raise ConfigError(problem)


def num_processes(cfg: CfgNode) -> int:
    """Processes of a run launched by `launch_job`: per machine NUM_GPUS (or NUM_CPU_PROCS on the CPU),
    times NUM_SHARDS machines."""
    return max(1, cfg.NUM_GPUS if cfg.NUM_GPUS > 0 else cfg.NUM_CPU_PROCS) * cfg.NUM_SHARDS


def _assert_processes(cfg: CfgNode) -> None:
    """This machine is one of NUM_SHARDS; the batch sizes are global: each is split evenly over every process
    of every machine."""
    if cfg.SHARD_ID >= cfg.NUM_SHARDS:
        raise ConfigError(f"SHARD_ID {cfg.SHARD_ID} must be < NUM_SHARDS {cfg.NUM_SHARDS} "
                          f"(machines are numbered 0 to NUM_SHARDS - 1)")
    world = num_processes(cfg)
    for key in ("TRAIN.BATCH_SIZE", "TEST.BATCH_SIZE"):
        section, name = key.split(".")
        bs = cfg[section][name]
        if bs % world:
            raise ConfigError(f"{key} = {bs} is not divisible by the {world} processes of this run")


def assert_and_infer_cfg(cfg: CfgNode) -> CfgNode:
    """Check the values that types cannot check (every numeric key against its rule in `ranges.RANGES`, then
    what depends on several keys), and write back what is inferred: every spelling of "no temporal operator"
    becomes None, and a SOLVER.CLIP_GRAD_L2NORM that YAML read as a string becomes a number (in place;
    returns `cfg`).

    The learning rates are never rescaled here: TRAIN.BATCH_SIZE is the global batch, the same on any
    number of machines, so the config saved with a run holds the learning rates it used.
    """
    _assert_choices(cfg)
    _infer_temporal_type(cfg)
    _assert_ranges(cfg)
    _assert_model(cfg)
    _assert_ordered(cfg)
    _assert_processes(cfg)
    return cfg


def load(files: Union[str, Sequence[str]] = (), opts: Sequence[Any] = ()) -> CfgNode:
    """The defaults, then each YAML file of `files` in order, then `opts` (KEY VALUE ...), checked and
    completed once by `assert_and_infer_cfg`: the way to get a config from Python."""
    cfg = get_cfg()
    for path in [files] if isinstance(files, str) else files:
        merge_from_file(cfg, path)
    merge_from_list(cfg, [str(o) if not isinstance(o, str) else o for o in opts])
    return assert_and_infer_cfg(cfg)
