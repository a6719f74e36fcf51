"""The `[K, N, E]` text-feature file: written by `stdd-text-features` (`utils/text_prompts.py`), read by the model (DATA.TEXT_AUG).

Format (a `torch.save`d dict, loadable with `weights_only=True`)::

    {"features": FloatTensor[K, N, E],      # un-normalised CLIP text embeddings, class-major
     "class_names": [str] * K,              # in class-index order
     "embed_dim": E, "num_prompts": N,
     "clip": {...},                         # CLIPConfig fields of the text tower's CLIP
     "templates": [str], "prompts": [[str] * N] * K,
     "clip_identity": {"name": str, "embed_dim": E, "text_tower_sha256": str},   # since version 2
     "format_version": 2}

`clip_identity` says which CLIP made the features: features from one CLIP are meaningless to another
of the same width, so the model compares it with its own (`check_feature_file_matches`). A bare tensor
`[K, N, E]` (the original work's released files) and version-1 files are accepted too, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from typing import Any, Optional

import torch

from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_torch_save

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
# Parameters of a CLIP that are not its text tower (OpenAI, open_clip and our own key layouts).
NOT_TEXT_PREFIXES = ("visual.",)
NOT_TEXT_NAMES = ("logit_scale", "logit_bias")


class TextFeatureError(UserError, ValueError):
    """A text-feature file is missing, unreadable, or does not match the class list or model."""


def save_text_features(path: str, features: torch.Tensor, class_names: list[str], **meta: Any) -> None:
    """Write the feature file atomically (temp file in the same folder, then rename)."""
    if features.dim() != 3 or features.shape[0] != len(class_names):
        raise TextFeatureError(
            f"features must be [K, N, E] with K = {len(class_names)} classes, got {tuple(features.shape)}"
        )
    payload = {
        "features": features.detach().float().cpu().contiguous(),
        "class_names": list(class_names),
        "embed_dim": int(features.shape[2]),
        "num_prompts": int(features.shape[1]),
        "format_version": FORMAT_VERSION,
        **meta,
    }
    atomic_torch_save(payload, path)


def load_text_features(path: str) -> tuple[torch.Tensor, dict]:
    """`(features [K, N, E] fp32, metadata)`; metadata is empty for a bare-tensor file."""
    if not path or not os.path.isfile(path):
        raise TextFeatureError(f"text-feature file not found: {path!r} (DATA.TEXT_AUG_FEATURE_FILE)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TextFeatureError(f"could not read text-feature file {path}: {type(e).__name__}: {e}") from None
    if isinstance(obj, torch.Tensor):
        feats, meta = obj, {}
    elif isinstance(obj, dict) and isinstance(obj.get("features"), torch.Tensor):
        feats = obj["features"]
        meta = {k: v for k, v in obj.items() if k != "features"}
    else:
        raise TextFeatureError(f"{path} holds neither a [K, N, E] tensor nor a feature dict")
    if feats.dim() != 3:
        raise TextFeatureError(f"{path}: features must be [K, N, E], got shape {tuple(feats.shape)}")
    return feats.float(), meta


def check_text_features(
    feats: torch.Tensor,
    meta: dict,
    path: str,
    num_classes: int,
    embed_dim: int,
    class_names: Optional[list[str]] = None,
) -> None:
    """Refuse a feature file whose class count, embedding size or class names differ from the model's."""
    if feats.shape[0] != num_classes:
        raise TextFeatureError(
            f"{path} has {feats.shape[0]} classes but the class-index file has {num_classes}"
        )
    if feats.shape[2] != embed_dim:
        raise TextFeatureError(
            f"{path} has embedding size {feats.shape[2]} but the model's CLIP embeds to {embed_dim}"
        )
    names = meta.get("class_names")
    if class_names is not None and names is not None and list(names) != list(class_names):
        diff = next(i for i, (a, b) in enumerate(zip(names, class_names)) if a != b) if len(names) == len(class_names) else -1
        where = f" (first difference at class {diff}: {names[diff]!r} vs {class_names[diff]!r})" if diff >= 0 else ""
        raise TextFeatureError(f"{path} was made for a different class list than the class-index file{where}")


# ------------------------------------------------------------------------------------- CLIP identity
def fingerprint_tensors(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 over the tensors' shapes and fp32 values, independent of their names and order.

    Each tensor is hashed on its own (shape + little-endian fp32 bytes) and the sorted digests are hashed
    together: the same weights give the same fingerprint whatever module wraps them, in fp16 or fp32
    (fp16 -> fp32 is exact), on any device.
    """
    digests = []
    for t in tensors:
        value = t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).contiguous()
        h = hashlib.sha256(repr(tuple(value.shape)).encode())
        array = value.numpy()
        h.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        digests.append(h.hexdigest())
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def text_tower_fingerprint(model: torch.nn.Module) -> str:
    """Fingerprint of a CLIP's text tower: every parameter except the image tower's and the logit scale.

    Pass a whole CLIP (OpenAI or open_clip layout: `visual.*` is skipped) or the text tower alone.
    Buffers are left out (attention masks are derived, and persistent in some layouts only). About
    half a second for ViT-B/16's 63M text parameters on one CPU core.
    """
    params = [p for name, p in model.named_parameters()
              if not name.startswith(NOT_TEXT_PREFIXES) and name not in NOT_TEXT_NAMES]
    if not params:
        raise ValueError("the module has no text-tower parameters to fingerprint")
    return fingerprint_tensors(params)


def clip_identity(name: str, embed_dim: int, fingerprint: str) -> dict:
    """The `clip_identity` record of a feature file."""
    return {"name": str(name), "embed_dim": int(embed_dim), "text_tower_sha256": str(fingerprint)}


def _same_name(a: str, b: str) -> bool:
    """ViT-B/16, ViT-B-16 and vitb16 are one name."""
    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    return norm(a) == norm(b)


def check_feature_file_matches(
    meta: dict, clip_name: str, embed_dim: int, fingerprint: Optional[str], path: str = "text-feature file"
) -> None:
    """Refuse features made with another CLIP than the model's (TextFeatureError naming both).

    The weights fingerprint decides when both sides have one (names are only shown: the same weights may
    go by a file name or a model name). Without the model's fingerprint the names are compared. A file
    from before `clip_identity` existed (a bare tensor, format version 1) loads with a warning.
    """
    record = meta.get("clip_identity")
    if not isinstance(record, dict):
        logger.warning("%s does not record the CLIP it was made with (an older or released file); make sure it "
                       "was built with %s, or rebuild it with stdd-text-features", path, clip_name)
        return
    theirs = f"{record.get('name')!r} (embedding size {record.get('embed_dim')}, text tower " \
             f"{str(record.get('text_tower_sha256'))[:12]})"
    ours = f"{clip_name!r} (embedding size {embed_dim}, text tower {str(fingerprint)[:12]})"
    problem = ""
    if record.get("embed_dim") != embed_dim:
        problem = "embedding size"
    elif fingerprint and record.get("text_tower_sha256"):
        problem = "" if record["text_tower_sha256"] == fingerprint else "text-tower weights"
    elif not _same_name(str(record.get("name")), clip_name):
        problem = "CLIP name"
    if problem:
        raise TextFeatureError(
            f"{path} was made with CLIP {theirs} but the model's CLIP is {ours}: different {problem}. Rebuild "
            "the file with stdd-text-features --clip-weights <the model's CLIP weights>"
        )
