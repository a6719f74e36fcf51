"""The `[K, N, E]` text-feature file: written by `utils/text_prompts.py`, read by the model (DATA.TEXT_AUG).

Format (a `torch.save`d dict, loadable with `weights_only=True`)::

    {"features": FloatTensor[K, N, E],      # un-normalised CLIP text embeddings, class-major
     "class_names": [str] * K,              # in class-index order
     "embed_dim": E, "num_prompts": N,
     "clip": {...},                         # CLIPConfig fields of the text tower's CLIP
     "templates": [str], "prompts": [[str] * N] * K,
     "format_version": 1}

A bare tensor `[K, N, E]` (the original work's released files) is accepted too, with no metadata.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_torch_save

FORMAT_VERSION = 1


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
