"""Checkpoint averaging (weight-space ensembles) and weight-space patching, streaming from disk.

After training, STDD averages its epoch checkpoints (the paper: uniform average of epochs 2..22) and
tests the averaged model zero-shot. The original tool stacked every checkpoint in memory, crashed on
stray files and dropped adapter weights. Here:

* one checkpoint is loaded at a time (memory-mapped) and accumulated in fp32 into one running sum per
  scheme, so peak memory is about (number of schemes + 1) model states whatever the number of
  checkpoints;
* a scheme is a weight vector over the files actually present (ids parsed from the names), so that the
  exponential moving average, too, is a weighted sum and all schemes share one pass over the files;
* `raw_model.*` (the frozen teacher), integer buffers and keys outside the selection are carried over
  unchanged from the last checkpoint;
* output files are written atomically (temp file in the same folder + `os.replace`);
* each output file stores, next to the training config (`cfg`), the commit and package versions it was
  made with (`env`; the last checkpoint's own record is kept in `meta["trained_with"]`), and the output
  folder gets the averaging run's `env.json` and `env.txt`.

Schemes (weights over the n sources in id order, always summing to 1):

* ``swa``: uniform, w_i = 1/n.
* ``gwa``: w_i ∝ N(id_i; mu, sigma), evaluated at each present id (raw CLIP is id 0).
* ``bwa``: w_i ∝ Beta(a, b).pdf((rank_i + 0.5)/n) with rank_i = 0..n-1 over the present sources. The
  original evaluated it on an assumed count of wa_end - wa_start + 1 files; with every file present the
  two agree, with gaps we spread the U-shape over the files that exist.
* ``ewa``: θ ← θ_1, then θ ← d·θ + (1−d)·θ_i, which is w_1 = d^(n−1), w_i = (1−d)·d^(n−i) for i ≥ 2.

Raw CLIP as epoch 0 (``raw_clip``) only has the OpenAI CLIP keys. For keys it lacks (adapters,
`projector_v.*`) the weights of the sources that do hold the key are rescaled to sum 1, i.e. those
keys are averaged over the checkpoints only.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import torch

from slowfast.clip import read_state_dict
from slowfast.errors import UserError
from slowfast.utils import checkpoint as cu
from slowfast.utils import env as envu
from slowfast.utils.atomic import atomic_torch_save, in_chain, is_temp_of, make_writable_dir, no_room

logger = logging.getLogger(__name__)

METHODS = ("swa", "gwa", "bwa", "ewa")
KEY_MODES = ("all", "clip")
CLIP_PREFIX = "model."
TEACHER_PREFIX = "raw_model."
RAW_CLIP_ID = 0

# `checkpoint_epoch_00005.pyth`, optionally with the engine's `{TASK}_` prefix.
_CHECKPOINT_NAME = re.compile(r"^(?:(?P<task>.+)_)?checkpoint_epoch_(?P<id>\d+)\.pyth$")


class WeightAveragingError(UserError, RuntimeError):
    """The checkpoints cannot be averaged or patched; the message names the file and key."""


@dataclass(frozen=True)
class SchemeParams:
    """Parameters of the weighting schemes (defaults are the original tool's constants)."""

    gauss_mu: float = 15.0
    gauss_sigma: float = 10.0
    beta_a: float = 0.5
    beta_b: float = 0.5
    ewa_decay: float = 0.9

    def check(self) -> None:
        """Every parameter finite and in its range (each message names the command's flag too). Within
        these ranges `scheme_weights` cannot overflow: a tiny sigma puts all weight on the epoch nearest mu."""
        rules = (
            ("gauss_mu", "--gauss-mu", "a finite number", lambda v: True),
            ("gauss_sigma", "--gauss-sigma", "a finite number > 0", lambda v: v > 0),
            ("beta_a", "--beta-a", "a finite number > 0", lambda v: v > 0),
            ("beta_b", "--beta-b", "a finite number > 0", lambda v: v > 0),
            ("ewa_decay", "--ewa-decay", "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0),
        )
        for name, flag, what, ok in rules:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
                raise WeightAveragingError(f"{flag} ({name}) must be {what}, got {value!r}")


@dataclass(frozen=True)
class Source:
    """One input of the average: an epoch checkpoint (id = 1-based epoch) or raw CLIP (id 0)."""

    id: int
    path: str
    is_raw_clip: bool = False


TensorSpec = tuple[tuple[int, ...], torch.dtype]


@dataclass
class AveragingPlan:
    """Everything decided before the heavy pass: the sources, the keys and each scheme's weights."""

    sources: list[Source]
    methods: list[str]
    weights: dict[str, list[float]]
    """Per scheme, one weight per source (in `sources` order), for keys every source holds."""
    checkpoint_weights: dict[str, list[float]]
    """Per scheme, the weights rescaled over the checkpoints only (keys raw CLIP lacks); = `weights` without raw CLIP."""
    keys_mode: str
    averaged_keys: list[str]
    clip_keys: frozenset[str]
    reference: dict[str, TensorSpec]
    params: SchemeParams
    start: int
    end: int
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoints(self) -> list[Source]:
        return [s for s in self.sources if not s.is_raw_clip]

    @property
    def raw_clip(self) -> Optional[Source]:
        return next((s for s in self.sources if s.is_raw_clip), None)

    def output_name(self, method: str) -> str:
        suffix = "_rawclip" if self.raw_clip is not None else ""
        return f"{method}_{self.start}_{self.end}{suffix}.pth"


# ----------------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------------


def scheme_weights(method: str, ids: Sequence[int], params: SchemeParams = SchemeParams()) -> list[float]:
    """Normalised weights of `method` for sources with these ids, given in averaging (id) order."""
    params.check()
    n = len(ids)
    if n == 0:
        raise WeightAveragingError("no sources to average")
    if method == "swa":
        raw = [1.0] * n
    elif method == "gwa":
        raw = _gauss(ids, params.gauss_mu, params.gauss_sigma)
    elif method == "bwa":
        raw = _beta(n, params.beta_a, params.beta_b)
    elif method == "ewa":
        d = params.ewa_decay
        raw = [d ** (n - 1)] + [(1 - d) * d ** (n - i) for i in range(2, n + 1)]
    else:
        raise WeightAveragingError(f"unknown averaging method {method!r}; choose from {', '.join(METHODS)}")
    total = sum(raw)
    if not total > 0 or not math.isfinite(total):
        raise WeightAveragingError(f"{method}: weights {raw} for ids {list(ids)} do not sum to a positive number")
    return [w / total for w in raw]


def _gauss(ids: Sequence[int], mu: float, sigma: float) -> list[float]:
    """N(id; mu, sigma) up to a constant factor: divided by its value at the id nearest mu (which gets 1),
    in a form where no step overflows, so any finite mu and sigma > 0 give usable weights."""
    dist = [abs(x - mu) for x in ids]
    near = min(dist)
    # (d^2 - near^2) / sigma^2 as a product of two quotients: sigma^2 itself may underflow to 0.
    return [1.0 if d == near else math.exp(-0.5 * ((d - near) / sigma) * ((d + near) / sigma)) for d in dist]


def _beta(n: int, a: float, b: float) -> list[float]:
    """Beta(a, b).pdf((rank + 0.5) / n) for rank 0..n-1 up to a constant factor (the largest gets 1): the log
    pdf is computed divided by `scale` so that huge a or b cannot overflow, then exponentiated relative to
    its maximum."""
    xs = [(r + 0.5) / n for r in range(n)]
    scale = max(1.0, abs(a - 1), abs(b - 1))
    logs = [(a - 1) / scale * math.log(x) + (b - 1) / scale * math.log1p(-x) for x in xs]
    top = max(logs)
    return [math.exp(scale * (v - top)) for v in logs]


def _renormalised(weights: Sequence[float], keep: Sequence[bool]) -> list[float]:
    """The weights of the kept sources rescaled to sum 1 (the others get 0)."""
    total = sum(w for w, k in zip(weights, keep) if k)
    if not total > 0:
        # Only when every kept weight is 0: ewa with decay 1 puts everything on raw CLIP (the first
        # source); for the keys raw CLIP lacks, "keep the first" means the first checkpoint.
        first = list(keep).index(True)
        return [1.0 if i == first else 0.0 for i in range(len(keep))]
    return [w / total if k else 0.0 for w, k in zip(weights, keep)]


# ----------------------------------------------------------------------------------------------------
# Finding and checking the checkpoints
# ----------------------------------------------------------------------------------------------------


def checkpoint_id(name: str) -> Optional[int]:
    """The 1-based epoch id in an engine checkpoint file name, or None for any other name."""
    m = _CHECKPOINT_NAME.match(name)
    return int(m.group("id")) if m else None


def _load_mmap(path: str) -> object:
    # mmap: tensor data stays on disk until read, so inspecting a 2 GB checkpoint costs nothing and
    # reading it costs only the pages touched (the optimizer state is never touched).
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
    # Files in torch's legacy (pre-zip) format cannot be memory-mapped: read them whole.
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_model_state(path: str) -> tuple[Optional[dict[str, torch.Tensor]], Optional[int], str, Optional[str]]:
    """(model_state, epoch, "", stored training config) for a checkpoint, or (None, None, reason, None) for
    a file that is not one; the config is None for a checkpoint that stores none."""
    try:
        obj = _load_mmap(path)
    except Exception as e:  # truncated, not a torch file, or holds objects weights_only refuses
        if in_chain(e, KeyboardInterrupt) is not None:  # Ctrl-C while torch read the file: not the file's fault
            raise KeyboardInterrupt from None
        first = str(e).splitlines()[0] if str(e) else ""
        return None, None, f"unreadable ({type(e).__name__}: {first[:200]})", None
    if not isinstance(obj, Mapping) or "model_state" not in obj:
        return None, None, "no 'model_state' entry", None
    state = obj["model_state"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None, None, "'model_state' is not a non-empty dict of tensors", None
    epoch, cfg = obj.get("epoch"), obj.get("cfg")
    return dict(state), (int(epoch) if isinstance(epoch, int) else None), "", (cfg if isinstance(cfg, str) else None)


def _spec(state: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


def _check_same_layout(reference: Mapping[str, TensorSpec], ref_path: str, spec: Mapping[str, TensorSpec], path: str) -> None:
    missing = [k for k in reference if k not in spec]
    if missing:
        raise WeightAveragingError(
            f"{path}: key {missing[0]!r} of {ref_path} is missing ({len(missing)} keys missing); "
            "all averaged checkpoints must come from the same model"
        )
    extra = [k for k in spec if k not in reference]
    if extra:
        raise WeightAveragingError(
            f"{path}: key {extra[0]!r} is not in {ref_path} ({len(extra)} extra keys); "
            "all averaged checkpoints must come from the same model"
        )
    for k, (shape, _) in reference.items():
        if spec[k][0] != shape:
            raise WeightAveragingError(f"{path}: key {k!r} has shape {list(spec[k][0])}, {ref_path} has {list(shape)}")


def find_checkpoints(source_dir: str, start: Optional[int] = None, end: Optional[int] = None) -> tuple[list[Source], list[str]]:
    """Checkpoint files of `source_dir` with start <= id <= end, in id order, and notes on ignored names.

    Only names are looked at here; `plan_averaging` opens the files.
    """
    if not os.path.isdir(source_dir):
        raise WeightAveragingError(f"source directory not found: {source_dir}")
    found: dict[int, str] = {}
    notes: list[str] = []
    for name in sorted(os.listdir(source_dir)):
        path = os.path.join(source_dir, name)
        cid = checkpoint_id(name)
        if cid is None:
            notes.append(f"ignored {path}: not a checkpoint_epoch_NNNNN.pyth file")
            continue
        if not os.path.isfile(path):
            notes.append(f"ignored {path}: not a regular file")
            continue
        if cid in found:
            raise WeightAveragingError(f"two checkpoints with epoch id {cid} in {source_dir}: {found[cid]} and {path}")
        found[cid] = path
    selected = [
        Source(i, found[i]) for i in sorted(found)
        if (start is None or i >= start) and (end is None or i <= end)
    ]
    return selected, notes


# Parameter names of a stock OpenAI CLIP (open_clip uses the same), per residual block and outside them.
_CLIP_BLOCK_KEYS = (
    "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight",
    "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias",
)
_CLIP_OTHER_KEYS = (
    "positional_embedding", "text_projection", "logit_scale", "token_embedding.weight", "ln_final.weight",
    "ln_final.bias", "visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.conv1.weight",
    "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
)


def _block_count(keys: Sequence[str], tower: str) -> int:
    """Residual blocks of `tower` ("visual.transformer" or "transformer") among CLIP keys (no prefix)."""
    pattern = re.compile(re.escape(tower) + r"\.resblocks\.(\d+)\.")
    found = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
    return max(found) + 1 if found else 0


def _stock_clip_keys(model_spec: Mapping[str, TensorSpec], source: str) -> set[str]:
    """`model.`-prefixed keys of a stock OpenAI CLIP with the checkpoint's numbers of blocks.

    The keys of the checkpoint's student that are not in this set are the ones STDD added (adapters,
    message tokens, ...). Key names depend only on the block counts, which the key names give.
    """
    clip = [k[len(CLIP_PREFIX):] for k in model_spec if k.startswith(CLIP_PREFIX)]
    vision, text = _block_count(clip, "visual.transformer"), _block_count(clip, "transformer")
    if not vision:
        raise WeightAveragingError(f"--keys clip: {source} has no 'model.visual.transformer.resblocks.*' keys")
    keys = {CLIP_PREFIX + k for k in _CLIP_OTHER_KEYS}
    for tower, n in (("visual.transformer", vision), ("transformer", text)):
        keys |= {f"{CLIP_PREFIX}{tower}.resblocks.{i}.{k}" for i in range(n) for k in _CLIP_BLOCK_KEYS}
    missing = sorted(k for k in keys if k not in model_spec)
    if missing:
        raise WeightAveragingError(f"{source}: CLIP key {missing[0]!r} is missing ({len(missing)} CLIP keys missing)")
    return keys


def _check_args(methods: list[str], keys: str, start: Optional[int], end: Optional[int], params: SchemeParams) -> None:
    for m in methods:
        if m not in METHODS:
            raise WeightAveragingError(f"unknown averaging method {m!r}; choose from {', '.join(METHODS)}")
    if not methods:
        raise WeightAveragingError("no averaging method given")
    if keys not in KEY_MODES:
        raise WeightAveragingError(f"keys must be one of {', '.join(KEY_MODES)}, got {keys!r}")
    for flag, value in (("--start", start), ("--end", end)):
        if value is not None and value < 1:
            raise WeightAveragingError(f"{flag} must be an epoch id >= 1 (checkpoint ids are 1-based), got {value}")
    if start is not None and end is not None and start > end:
        raise WeightAveragingError(f"--start {start} is after --end {end}")
    params.check()


def _scan_checkpoints(candidates: list[Source], notes: list[str], skip_unreadable: bool = False
                      ) -> tuple[list[Source], Optional[dict[str, TensorSpec]], str]:
    """(readable checkpoints, key layout of the first, its path). An unreadable checkpoint in the range
    stops the plan (a truncated epoch would otherwise silently change the average), unless
    `skip_unreadable`, which notes it; a checkpoint whose layout or epoch entry disagrees stops the plan."""
    checkpoints: list[Source] = []
    reference: Optional[dict[str, TensorSpec]] = None
    ref_path = ""
    first_config: Optional[tuple[dict, str]] = None  # (stored config, path) of the first checkpoint storing one
    for src in candidates:
        state, epoch, reason, stored_cfg = _read_model_state(src.path)
        if state is None:
            if not skip_unreadable:
                raise WeightAveragingError(
                    f"{src.path} (epoch {src.id}, inside the range) is not a usable checkpoint: {reason}; "
                    "restore it, narrow --start/--end, or pass --skip-unreadable to average the others")
            notes.append(f"ignored {src.path}: {reason}")
            continue
        if epoch is not None and epoch + 1 != src.id:
            raise WeightAveragingError(
                f"{src.path}: the file name says epoch {src.id} but the checkpoint holds epoch {epoch} "
                f"(0-based, i.e. file epoch {epoch + 1}); was it renamed?"
            )
        spec = _spec(state)
        del state
        first_config = _check_same_model(first_config, stored_cfg, src.path)
        if reference is None:
            reference, ref_path = spec, src.path
        else:
            _check_same_layout(reference, ref_path, spec, src.path)
        checkpoints.append(src)
    return checkpoints, reference, ref_path


def _check_same_model(first: Optional[tuple[dict, str]], text: Optional[str], path: str) -> Optional[tuple[dict, str]]:
    """Refuse a checkpoint whose stored config names another model than the first checkpoint's, on the
    model-defining keys testing compares (`slowfast.utils.checkpoint.model_key_mismatches`): the tensors of
    two models may have the same names and shapes, and their average would be labelled as the last one's
    model. `text` is the config `path` stores. Returns the reference config (this checkpoint's when it is
    the first to store one)."""
    config = cu.checkpoint_config({"cfg": text})
    if config is None:  # written by an older version: nothing to compare
        return first
    if first is None:
        return config, path
    diffs = cu.model_key_mismatches(first[0], config)
    if diffs:
        key, in_first, in_this = diffs[0]
        raise WeightAveragingError(
            f"{first[1]} and {path} were trained as different models: {key} is {in_first!r} in the first and "
            f"{in_this!r} in the second; average checkpoints of one run only"
        )
    return first


def _raw_clip_spec(raw_clip: str, reference: Mapping[str, TensorSpec], ref_path: str) -> dict[str, TensorSpec]:
    """Key layout of the raw CLIP file as `model.` keys; each must exist in the checkpoints with its shape."""
    clip_sd = read_state_dict(raw_clip)
    clip_spec = {CLIP_PREFIX + k: s for k, s in _spec(clip_sd).items()}
    del clip_sd
    for k, (shape, _) in clip_spec.items():
        name = k[len(CLIP_PREFIX):]
        if k not in reference:
            raise WeightAveragingError(f"{raw_clip}: CLIP key {name!r} has no {k!r} in {ref_path}")
        if reference[k][0] != shape:
            raise WeightAveragingError(
                f"{raw_clip}: CLIP key {name!r} has shape {list(shape)}, {k!r} in {ref_path} has {list(reference[k][0])}"
            )
    return clip_spec


def _select_keys(reference: Mapping[str, TensorSpec], keys: str, clip_keys: frozenset[str]) -> list[str]:
    """The averaged keys: the float CLIP keys (`keys` "clip"), or every float key of the trainable model
    (`model.*` with the adapters, and `projector_v.*`); never the frozen teacher."""
    floating = [k for k, (_, dt) in reference.items() if dt.is_floating_point]
    if keys == "clip":
        return [k for k in floating if k in clip_keys]
    return [k for k in floating if not k.startswith(TEACHER_PREFIX)]


def plan_averaging(
    source_dir: str,
    methods: Sequence[str] = ("swa",),
    start: Optional[int] = None,
    end: Optional[int] = None,
    keys: str = "all",
    raw_clip: Optional[str] = None,
    params: SchemeParams = SchemeParams(),
    skip_unreadable: bool = False,
) -> AveragingPlan:
    """Open (memory-mapped) and check every selected checkpoint, pick the keys, compute the weights.

    Files with a checkpoint name that cannot be read or hold no `model_state` are skipped with a note;
    checkpoints whose keys or shapes differ from the first stop the plan (file and key named), as does
    an `epoch` entry that disagrees with the id in the file name.
    """
    methods = list(dict.fromkeys(methods))
    _check_args(methods, keys, start, end, params)
    candidates, notes = find_checkpoints(source_dir, start, end)
    checkpoints, reference, ref_path = _scan_checkpoints(candidates, notes, skip_unreadable)
    if reference is None:
        rng = f"ids {start if start is not None else 'first'}..{end if end is not None else 'last'}"
        raise WeightAveragingError(f"no readable checkpoint_epoch_NNNNN.pyth files for {rng} in {source_dir}")
    sources = list(checkpoints)
    # CLIP keys: those of the raw CLIP file when given, else those of a stock CLIP of the checkpoints' size.
    clip_keys: frozenset[str] = frozenset()
    if raw_clip is not None:
        clip_keys = frozenset(_raw_clip_spec(raw_clip, reference, ref_path))
        sources.insert(0, Source(RAW_CLIP_ID, raw_clip, is_raw_clip=True))
    elif keys == "clip":
        clip_keys = frozenset(_stock_clip_keys(reference, ref_path))
    is_ckpt = [not s.is_raw_clip for s in sources]
    weights = {m: scheme_weights(m, [s.id for s in sources], params) for m in methods}
    return AveragingPlan(
        sources=sources, methods=methods, weights=weights,
        checkpoint_weights={m: _renormalised(w, is_ckpt) for m, w in weights.items()}, keys_mode=keys,
        averaged_keys=_select_keys(reference, keys, clip_keys), clip_keys=clip_keys, reference=reference,
        params=params, start=checkpoints[0].id, end=checkpoints[-1].id,
        notes=notes + _gap_notes(checkpoints, start, end),
    )


def _gap_notes(checkpoints: list[Source], start: Optional[int], end: Optional[int]) -> list[str]:
    """Say which epochs of the requested range have no checkpoint. The outputs are named after the first
    and last epoch really averaged, so `--start 2 --end 22` over epochs 1..2 writes `swa_2_2.pth`."""
    ids = [s.id for s in checkpoints]
    lo, hi = (start if start is not None else ids[0]), (end if end is not None else ids[-1])
    missing = sorted(set(range(lo, hi + 1)) - set(ids))
    if not missing:
        return []
    return [f"note: no checkpoint for epochs {_ranges(missing)} of {lo}..{hi}; averaging epochs {_ranges(ids)}, "
            f"named {ids[0]}_{ids[-1]}"]


def _ranges(ids: list[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> "1-3, 5, 7-8"."""
    parts: list[str] = []
    for i in ids:
        if parts and parts[-1][1] == i - 1:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def format_plan(plan: AveragingPlan) -> str:
    """A human-readable table: which file gets which weight under each scheme."""
    lines = [f"{len(plan.checkpoints)} checkpoints, ids {[s.id for s in plan.checkpoints]}"]
    if plan.raw_clip is not None:
        lines.append(f"raw CLIP as id 0: {plan.raw_clip.path} (CLIP keys only; other keys use the checkpoint-only weights)")
    n_carried = len(plan.reference) - len(plan.averaged_keys)
    lines.append(f"keys: {plan.keys_mode}: {len(plan.averaged_keys)} averaged, {n_carried} carried over from {plan.checkpoints[-1].path}")
    header = "id".rjust(4) + "  " + "".join(m.rjust(10) for m in plan.methods) + "  file"
    lines.append(header)
    for i, s in enumerate(plan.sources):
        lines.append(f"{s.id:4d}  " + "".join(f"{plan.weights[m][i]:10.6f}" for m in plan.methods) + f"  {s.path}")
    if plan.raw_clip is not None:
        lines.append("checkpoint-only weights (keys raw CLIP lacks):")
        for i, s in enumerate(plan.sources):
            if not s.is_raw_clip:
                lines.append(f"{s.id:4d}  " + "".join(f"{plan.checkpoint_weights[m][i]:10.6f}" for m in plan.methods))
    lines.append("outputs: " + ", ".join(plan.output_name(m) for m in plan.methods))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# The streaming pass
# ----------------------------------------------------------------------------------------------------


def _load_source(src: Source) -> dict[str, torch.Tensor]:
    if src.is_raw_clip:
        return {CLIP_PREFIX + k: v for k, v in read_state_dict(src.path).items()}
    state, _, reason, _ = _read_model_state(src.path)
    if state is None:  # the file changed since planning
        raise WeightAveragingError(f"{src.path}: {reason}")
    return state


def accumulate(plan: AveragingPlan) -> dict[str, dict[str, torch.Tensor]]:
    """One pass over the sources: for each scheme, the fp32 weighted sum of every averaged key.

    Only one source is held at a time (memory-mapped); it is dropped before the next is opened.
    """
    sums: dict[str, dict[str, torch.Tensor]] = {m: {} for m in plan.methods}
    averaged = set(plan.averaged_keys)
    for i, src in enumerate(plan.sources):
        state = _load_source(src)
        if not src.is_raw_clip:
            _check_same_layout(plan.reference, plan.checkpoints[0].path, _spec(state), src.path)
        for key in plan.averaged_keys:
            if key not in state:
                continue  # raw CLIP lacks the non-CLIP keys: they use the checkpoint-only weights
            value = state[key]
            in_all = key in plan.clip_keys or plan.raw_clip is None
            for m in plan.methods:
                w = (plan.weights if in_all else plan.checkpoint_weights)[m][i]
                acc = sums[m].get(key)
                if acc is None:
                    sums[m][key] = value.to(torch.float32) * w
                else:
                    acc.add_(value, alpha=w)
        del state
    for m in plan.methods:
        missing = averaged - set(sums[m])
        if missing:  # cannot happen with a consistent plan; guard against silent zeros
            raise WeightAveragingError(f"{m}: no source held key {sorted(missing)[0]!r}")
    return sums


def _remove_stale_temps(path: str, log: Callable[[str], None]) -> None:
    """Temp files of an earlier, killed write of `path` (named by `slowfast.utils.atomic`)."""
    directory = os.path.dirname(os.path.abspath(path))
    for name in os.listdir(directory):
        if is_temp_of(name, path):
            os.remove(os.path.join(directory, name))
            log(f"removed {os.path.join(directory, name)} (left by an interrupted run)")


def _meta(plan: AveragingPlan, method: str) -> dict:
    return {
        "method": method,
        "source_files": [s.path for s in plan.sources],
        "source_ids": [s.id for s in plan.sources],
        "weights": list(plan.weights[method]),
        "checkpoint_only_weights": list(plan.checkpoint_weights[method]),
        "raw_clip": plan.raw_clip.path if plan.raw_clip is not None else None,
        "keys": plan.keys_mode,
        "averaged_keys": len(plan.averaged_keys),
        "carried_from": plan.checkpoints[-1].path,
        "start": plan.start,
        "end": plan.end,
        "params": {
            "gauss_mu": plan.params.gauss_mu, "gauss_sigma": plan.params.gauss_sigma,
            "beta_a": plan.params.beta_a, "beta_b": plan.params.beta_b, "ewa_decay": plan.params.ewa_decay,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _stored_record(path: str) -> tuple[Optional[str], Optional[dict]]:
    """The "cfg" (the training config, YAML) and "env" (its provenance) entries of a checkpoint, carried into
    the files made from it so that testing them checks the model keys as for the checkpoint itself; None
    for an entry it lacks."""
    try:
        obj = _load_mmap(path)
    except Exception as e:  # the file was readable when planned; a later failure shows in the model state
        if in_chain(e, KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        return None, None
    cfg = obj.get("cfg") if isinstance(obj, Mapping) else None
    env = obj.get("env") if isinstance(obj, Mapping) else None
    return (cfg if isinstance(cfg, str) else None), (dict(env) if isinstance(env, Mapping) else None)


def run_averaging(plan: AveragingPlan, output_dir: str, log: Callable[[str], None] = logger.info) -> list[str]:
    """Average as planned and write `{method}_{start}_{end}.pth` per scheme into `output_dir` (with this
    run's env.json and env.txt); returns the averaged files' paths.

    Averaged keys are cast back to the dtype of the last checkpoint; every other key (the frozen
    teacher, integer buffers, keys outside `--keys`) is that checkpoint's tensor, unchanged. An output
    folder that cannot be written stops the run before the pass over the checkpoints; a full disk stops it
    naming the file, keeping the files already finished and nothing of the one being written.
    """
    make_writable_dir(output_dir, "--output-dir")
    sums = accumulate(plan)
    last = _load_source(plan.checkpoints[-1])
    cfg, trained_with = _stored_record(plan.checkpoints[-1].path)
    made_with = envu.provenance()
    written: list[str] = []
    for method in plan.methods:
        acc = sums.pop(method)
        state: dict[str, torch.Tensor] = {}
        for key in plan.reference:  # the checkpoints' key order
            if key in acc:
                state[key] = acc.pop(key).to(last[key].dtype)  # frees the fp32 sum key by key
            else:
                state[key] = last[key]
        path = os.path.join(output_dir, plan.output_name(method))
        _remove_stale_temps(path, log)
        meta = {**_meta(plan, method), "trained_with": trained_with}
        with _writing(path, written):
            atomic_torch_save({"model_state": state, "meta": meta, "cfg": cfg, "env": made_with}, path)
        log(f"wrote {path}")
        written.append(path)
        del state, acc
    # Last, so that the folder's env.json describes the run whose files are all there.
    for name in (envu.ENV_JSON, envu.ENV_TXT):
        _remove_stale_temps(os.path.join(output_dir, name), log)
    with _writing(os.path.join(output_dir, envu.ENV_JSON), written):
        envu.write_env_files(output_dir, envu.collect_env())
    return written


@contextmanager
def _writing(path: str, written: Sequence[str] = ()) -> Iterator[None]:
    """Around an atomic write of `path`: Ctrl-C stays Ctrl-C (the command exits 130) and a failed write is one
    line naming the file and the finished files that are kept. The atomic write has already removed its
    temporary file, so nothing of `path` is left."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        if in_chain(e, KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        full = no_room(e)
        err = full or in_chain(e, OSError)
        if err is None:
            raise
        kept = f"; kept the finished {', '.join(os.path.basename(p) for p in written)}" if written else ""
        if full:
            what, todo = "no room to write", "make room and run the command again"
        else:
            what, todo = "cannot write", "check the folder and run the command again"
        reason = err.strerror or type(err).__name__
        raise WeightAveragingError(f"{what} {path} ({reason}): nothing of it is left{kept}; {todo}") from None


# ----------------------------------------------------------------------------------------------------
# Weight-space patching (WiSE-FT style, docs/method.md)
# ----------------------------------------------------------------------------------------------------


def patch_state_dict(
    model_state: Mapping[str, torch.Tensor],
    clip_state: Mapping[str, torch.Tensor],
    ratio: float,
    prefix: str = CLIP_PREFIX,
) -> dict[str, torch.Tensor]:
    """θ = ratio·θ_CLIP + (1 − ratio)·θ for every CLIP key (`prefix + k` for k in `clip_state`).

    ratio 0 is the fine-tuned model, 1 raw CLIP. The blend is computed in fp32 and cast back to the
    model's dtype. Keys the CLIP file lacks (the teacher, `projector_v.*`, adapters) are returned
    unchanged, as are non-float entries. The one implementation: `weight_average_tool.py --patch` and
    the test engine's TEST.PATCHING_MODEL both call it, so both give the same weights.
    """
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise WeightAveragingError(f"patching ratio must be in [0, 1] (0 = fine-tuned, 1 = raw CLIP), got {ratio}")
    out = dict(model_state)
    for k, clip_value in clip_state.items():
        key = prefix + k
        if key not in model_state:
            raise WeightAveragingError(f"patching: CLIP key {k!r} has no {key!r} in the model state")
        value = model_state[key]
        if tuple(value.shape) != tuple(clip_value.shape):
            raise WeightAveragingError(
                f"patching: CLIP key {k!r} has shape {list(clip_value.shape)}, {key!r} has {list(value.shape)}"
            )
        if not value.is_floating_point():
            continue
        blended = clip_value.to(torch.float32).mul(ratio).add_(value.to(torch.float32), alpha=1.0 - ratio)
        out[key] = blended.to(value.dtype)
    return out


def patch_checkpoint(checkpoint: str, clip: str, ratio: float, output: str) -> str:
    """Patch one checkpoint file's `model_state` with the CLIP weights in `clip`; written atomically.

    `output` may not be one of the inputs: the input would be lost if the patch turned out wrong.
    """
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):  # before reading two weight files
        raise WeightAveragingError(f"--ratio must be in [0, 1] (0 = the checkpoint, 1 = raw CLIP), got {ratio}")
    for role, given in (("--patch", checkpoint), ("--clip", clip)):
        if os.path.exists(output) and os.path.samefile(output, given):
            raise WeightAveragingError(f"--output {output} is the {role} input; write the patched file elsewhere")
    state, _, reason, _ = _read_model_state(checkpoint)
    if state is None:
        raise WeightAveragingError(f"{checkpoint}: not a checkpoint: {reason}")
    clip_state = read_state_dict(clip)
    try:
        patched = patch_state_dict(state, clip_state, ratio)
    except WeightAveragingError as e:
        raise WeightAveragingError(f"{checkpoint} with {clip}: {e}") from None
    del clip_state
    meta = {
        "method": "patch", "ratio": float(ratio), "source_files": [checkpoint], "raw_clip": clip,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    cfg, meta["trained_with"] = _stored_record(checkpoint)
    with _writing(output):
        atomic_torch_save({"model_state": patched, "meta": meta, "cfg": cfg, "env": envu.provenance()}, output)
    return output


__all__ = [
    "METHODS", "KEY_MODES", "WeightAveragingError", "SchemeParams", "Source", "AveragingPlan", "scheme_weights",
    "checkpoint_id", "find_checkpoints", "plan_averaging", "format_plan", "accumulate", "run_averaging",
    "patch_state_dict", "patch_checkpoint",
]
