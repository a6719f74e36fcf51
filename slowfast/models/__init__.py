"""Models: a registry of model builders and `build_model(cfg)`, the one place the MODEL config is read.

Everything below `build_model` takes explicit arguments (`TemporalClipVideo(...)`, the operators in
`temporal_ops`), so it can be used and tested without a config.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch
from torch import nn

from slowfast.clip import CLIPWeightsError, check_arch, custom_clip_config, random_clip_state_dict, read_state_dict
from slowfast.config import ConfigError
from slowfast.config.choices import ARCH_TO_OPEN_CLIP, CUSTOM_ARCH, OPENAI_TAG, OPERATOR_FIELDS, TEMPORAL_TYPES, normalize_temporal_type
from slowfast.models.temporal_ops import TemporalOpConfig, TemporalOpError
from slowfast.models.text_classifier import TEMPLATES
from slowfast.models.video_model import ClipSource, TeacherConfig, TemporalClipVideo
from slowfast.text.feature_file import check_feature_file_matches, check_text_features, load_text_features, text_tower_fingerprint
from slowfast.utils.class_index import ClassIndexError, read_class_names

MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: `@register_model("Name")` on a `builder(cfg, class_names=None) -> nn.Module`."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODEL_REGISTRY:
            raise KeyError(f"model {name!r} is already registered")
        MODEL_REGISTRY[name] = builder
        return builder

    return deco


def model_device(cfg) -> torch.device:
    """CPU when NUM_GPUS is 0, else `cuda:<LOCAL_RANK>` (the launcher's env) or the current CUDA device."""
    if cfg.NUM_GPUS == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"NUM_GPUS is {cfg.NUM_GPUS} but CUDA is not available; use NUM_GPUS 0 for the CPU")
    rank = os.environ.get("LOCAL_RANK")
    return torch.device("cuda", int(rank) if rank is not None else torch.cuda.current_device())


def open_clip_name(arch: str) -> str:
    """The open_clip model name of MODEL.ARCH (`vitb16` -> `ViT-B-16`; open_clip names as they are)."""
    return ARCH_TO_OPEN_CLIP.get(arch, arch)


def clip_weights_from_cfg(cfg, weights: str = "") -> ClipSource:
    """The CLIP weights `weights` (default MODEL.CLIP_WEIGHTS) name, for MODEL.ARCH.

    A local file, an open_clip pretrained tag or `hf-hub:ORG/NAME` (from MODEL.CLIP_CACHE_DIR, downloaded
    there by open_clip when the network allows); empty: OpenAI's release for the short names, or for
    ARCH custom a seeded random CLIP of the MODEL.CUSTOM_CLIP sizes.
    """
    m = cfg.MODEL
    weights = weights or m.CLIP_WEIGHTS
    arch = None if m.ARCH == CUSTOM_ARCH else m.ARCH
    if not weights and arch is None:
        c = m.CUSTOM_CLIP
        config = custom_clip_config(
            embed_dim=c.EMBED_DIM, image_resolution=c.IMAGE_RESOLUTION, vision_patch=c.VISION_PATCH,
            vision_width=c.VISION_WIDTH, vision_layers=c.VISION_LAYERS, vision_heads=c.VISION_HEADS,
            text_width=c.TEXT_WIDTH, text_layers=c.TEXT_LAYERS, text_heads=c.TEXT_HEADS,
            context_length=m.CONTEXT_LENGTH, vocab_size=c.VOCAB_SIZE,
        )
        return ClipSource(random_clip_state_dict(config, seed=c.SEED), None, f"random CLIP (MODEL.ARCH custom, seed {c.SEED})")
    check_arch(m.ARCH)  # an unusable architecture is said so before any weights are looked up or downloaded
    if not weights and arch not in ARCH_TO_OPEN_CLIP:
        raise CLIPWeightsError(f"MODEL.ARCH {arch}: set MODEL.CLIP_WEIGHTS to a file, an open_clip tag or hf-hub:ORG/NAME")
    tag = weights or OPENAI_TAG
    model_name = open_clip_name(arch) if arch else None
    sd = read_state_dict(tag, model_name=model_name, cache_dir=m.CLIP_CACHE_DIR or None)
    return ClipSource(sd, arch, tag)


def temporal_op_config(cfg) -> TemporalOpConfig:
    """The operator settings, read through the one table of their config keys (`OPERATOR_FIELDS`)."""
    def value(key: str) -> Any:
        section, name = key.split(".")
        v = cfg[section][name]
        return tuple(v) if isinstance(v, (list, tuple)) else v

    values = {f: value(key) for f, key in OPERATOR_FIELDS.items()}
    values["type"] = normalize_temporal_type(values["type"])
    return TemporalOpConfig(**values)


def teacher_config(cfg) -> TeacherConfig:
    m = cfg.MODEL
    return TeacherConfig(
        keep_raw_model=m.KEEP_RAW_MODEL, distillation=m.RAW_MODEL_DISTILLATION,
        distillation_ratio=m.DISTILLATION_RATIO, distillation_grad=m.DISTILLATION_GRAD,
        ensemble_pred=m.ENSEMBLE_PRED, ensemble_rawmodel_ratio=m.ENSEMBLE_RAWMODEL_RATIO,
    )


@register_model("TemporalClipVideo")
def build_temporal_clip_video(cfg, class_names: Optional[Sequence[str]] = None) -> TemporalClipVideo:
    """Translate the config into `TemporalClipVideo`'s arguments (checks the class list and feature file);
    the classifier is computed after the move to the device, where the text tower runs. `class_names`
    given: the classifier's classes instead of DATA.INDEX_LABEL_MAPPING_FILE's (no feature file)."""
    if class_names is not None:
        return _with_classes(cfg, list(class_names))
    class_names = class_names_from_cfg(cfg)
    clip = clip_weights_from_cfg(cfg)
    features = None
    if cfg.DATA.TEXT_AUG:
        path = cfg.DATA.TEXT_AUG_FEATURE_FILE
        features, meta = load_text_features(path)
        check_text_features(features, meta, path, len(class_names), clip.state_dict["text_projection"].shape[1], class_names)
    m = cfg.MODEL
    model = _video_model(cfg, clip)
    if features is not None:  # the text tower is frozen: the student's is the one the file must come from
        check_feature_file_matches(meta, m.CLIP_WEIGHTS or m.ARCH, features.shape[-1], text_tower_fingerprint(model.model), path)
    model.set_classifier_from(class_names, features, cfg.DATA.TEXT_AUG_FEATURE_FILE if features is not None else "templates")
    return model


def _video_model(cfg, clip: ClipSource) -> TemporalClipVideo:
    m = cfg.MODEL
    return TemporalClipVideo(
        clip, None, op=temporal_op_config(cfg), teacher=teacher_config(cfg), context_length=m.CONTEXT_LENGTH,
        use_checkpoint=m.USE_CHECKPOINT, compile_visual=m.COMPILE,
    ).to(model_device(cfg))


def _with_classes(cfg, class_names: list[str]) -> TemporalClipVideo:
    model = _video_model(cfg, clip_weights_from_cfg(cfg))
    model.set_classifier_from(class_names, None, "templates")
    return model


def class_names_from_cfg(cfg) -> list[str]:
    """The classes of DATA.INDEX_LABEL_MAPPING_FILE, which must be MODEL.NUM_CLASSES many."""
    class_names = read_class_names(cfg.DATA.INDEX_LABEL_MAPPING_FILE)
    if cfg.MODEL.NUM_CLASSES != len(class_names):
        raise ConfigError(
            f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but {cfg.DATA.INDEX_LABEL_MAPPING_FILE} has "
            f"{len(class_names)} classes; set MODEL.NUM_CLASSES {len(class_names)}"
        )
    return class_names


def _builder(cfg) -> Callable[..., nn.Module]:
    name = cfg.MODEL.MODEL_NAME
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"MODEL.MODEL_NAME {name!r} is not a registered model; known: {', '.join(sorted(MODEL_REGISTRY))}")
    return MODEL_REGISTRY[name]


def check_model_config(cfg) -> None:
    """What `build_model` would refuse in the config and its class-index file, checked without building
    anything: MODEL.MODEL_NAME, MODEL.ARCH (`check_arch`) and, when DATA.INDEX_LABEL_MAPPING_FILE is set,
    MODEL.NUM_CLASSES against it."""
    _builder(cfg)
    check_arch(cfg.MODEL.ARCH)
    if cfg.DATA.INDEX_LABEL_MAPPING_FILE:
        class_names_from_cfg(cfg)


def build_model(cfg, class_names: Optional[Sequence[str]] = None) -> nn.Module:
    """The model named by MODEL.MODEL_NAME, on its device (not DDP-wrapped). `class_names`: classify
    these classes (templates) instead of DATA.INDEX_LABEL_MAPPING_FILE's, e.g. your own class list."""
    builder = _builder(cfg)
    return builder(cfg) if class_names is None else builder(cfg, class_names=class_names)


__all__ = [
    "MODEL_REGISTRY", "register_model", "build_model", "check_model_config", "class_names_from_cfg", "model_device", "clip_weights_from_cfg", "open_clip_name",
    "temporal_op_config", "teacher_config", "TemporalClipVideo", "ClipSource", "TeacherConfig", "TemporalOpConfig",
    "TemporalOpError", "TEMPORAL_TYPES",
    "TEMPLATES", "ClassIndexError", "read_class_names",
]
