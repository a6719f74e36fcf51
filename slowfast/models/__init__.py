"""Models: a registry of model builders and `build_model(cfg)`, the one place the MODEL config is read.

Everything below `build_model` takes explicit arguments (`TemporalClipVideo(...)`, the operators in
`temporal_ops`), so it can be used and tested without a config.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from slowfast.models.clip.loading import (
    ARCH_TO_NAME,
    custom_clip_config,
    random_clip_state_dict,
    read_state_dict,
    resolve_clip_weights,
)
from slowfast.models.temporal_ops import TEMPORAL_TYPES, TemporalOpConfig, TemporalOpError
from slowfast.models.text_classifier import TEMPLATES
from slowfast.utils.class_index import ClassIndexError, read_class_names
from slowfast.models.video_model import TemporalClipVideo
from slowfast.text.features import check_text_features, load_text_features

MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: `@register_model("Name")` on a `builder(cfg) -> nn.Module`."""

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
        raise RuntimeError(f"NUM_GPUS is {cfg.NUM_GPUS} but CUDA is not available; use NUM_GPUS 0 for the CPU")
    rank = os.environ.get("LOCAL_RANK")
    return torch.device("cuda", int(rank) if rank is not None else torch.cuda.current_device())


def clip_state_dict_from_cfg(cfg) -> tuple[dict[str, torch.Tensor], str]:
    """`(state dict, source)`: MODEL.CLIP_WEIGHTS (a file), else MODEL.ARCH by name from the cache
    (MODEL.CLIP_CACHE_DIR), else for ARCH custom a seeded random CLIP of the MODEL.CUSTOM_CLIP sizes."""
    m = cfg.MODEL
    if m.CLIP_WEIGHTS:
        path = resolve_clip_weights(m.CLIP_WEIGHTS, m.CLIP_CACHE_DIR or None, download=False)
        return read_state_dict(path), path
    if m.ARCH == "custom":
        c = m.CUSTOM_CLIP
        config = custom_clip_config(
            embed_dim=c.EMBED_DIM, image_resolution=c.IMAGE_RESOLUTION, vision_patch=c.VISION_PATCH,
            vision_width=c.VISION_WIDTH, vision_layers=c.VISION_LAYERS, vision_heads=c.VISION_HEADS,
            text_width=c.TEXT_WIDTH, text_layers=c.TEXT_LAYERS, text_heads=c.TEXT_HEADS,
            context_length=m.CONTEXT_LENGTH, vocab_size=c.VOCAB_SIZE,
        )
        return random_clip_state_dict(config, seed=c.SEED), f"random CLIP (MODEL.ARCH custom, seed {c.SEED})"
    if m.ARCH not in ARCH_TO_NAME:
        raise ValueError(f"MODEL.ARCH {m.ARCH!r} is not one of {', '.join(ARCH_TO_NAME)}, custom")
    path = resolve_clip_weights(m.ARCH, m.CLIP_CACHE_DIR or None)
    return read_state_dict(path), path


def temporal_op_config(cfg) -> TemporalOpConfig:
    """The operator settings of the MODEL section (and DATA.NUM_FRAMES)."""
    m = cfg.MODEL
    op_type = m.TEMPORAL_MODELING_TYPE
    if op_type in ("None", "none", ""):
        op_type = None
    return TemporalOpConfig(
        type=op_type,
        num_frames=cfg.DATA.NUM_FRAMES,
        mask_rate=m.MASK_RATE,
        mask_stride=tuple(int(s) for s in m.MASK_STRIDE),
        spatial_repeat=m.SPATIAL_REPEAT,
        temporal_shuffle=m.TEMPORAL_SHUFFLE,
        deterministic_test_masks=m.DETERMINISTIC_TEST_MASKS,
        channel_fold=m.CHANNEL_FOLD,
        temporal_scale=tuple(int(s) for s in m.TEMPORAL_SCALE),
        mlp_input=m.STCROSS_MLP_INPUT,
        fused_attention=m.FUSED_ATTENTION,
    )


@register_model("TemporalClipVideo")
def build_temporal_clip_video(cfg) -> TemporalClipVideo:
    """Translate the config into `TemporalClipVideo`'s arguments (checks the class list and feature file)."""
    class_names = read_class_names(cfg.DATA.INDEX_LABEL_MAPPING_FILE)
    if cfg.MODEL.NUM_CLASSES != len(class_names):
        raise ValueError(
            f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES} but {cfg.DATA.INDEX_LABEL_MAPPING_FILE} has "
            f"{len(class_names)} classes; set MODEL.NUM_CLASSES {len(class_names)}"
        )
    sd, source = clip_state_dict_from_cfg(cfg)
    features, feature_source = None, "text features"
    if cfg.DATA.TEXT_AUG:
        path = cfg.DATA.TEXT_AUG_FEATURE_FILE
        features, meta = load_text_features(path)
        embed_dim = sd["text_projection"].shape[1]
        check_text_features(features, meta, path, len(class_names), embed_dim, class_names)
        feature_source = path
    m = cfg.MODEL
    return TemporalClipVideo(
        sd,
        class_names,
        op=temporal_op_config(cfg),
        text_features=features,
        keep_raw_model=m.KEEP_RAW_MODEL,
        distillation=m.RAW_MODEL_DISTILLATION,
        distillation_ratio=m.DISTILLATION_RATIO,
        distillation_grad=m.DISTILLATION_GRAD,
        ensemble_pred=m.ENSEMBLE_PRED,
        ensemble_rawmodel_ratio=m.ENSEMBLE_RAWMODEL_RATIO,
        context_length=m.CONTEXT_LENGTH,
        use_checkpoint=m.USE_CHECKPOINT,
        fused_attention=m.FUSED_ATTENTION,
        compile_visual=m.COMPILE,
        device=model_device(cfg),
        source=source,
        text_feature_source=feature_source,
    )


def build_model(cfg) -> nn.Module:
    """The model named by MODEL.MODEL_NAME, on its device (not DDP-wrapped)."""
    name = cfg.MODEL.MODEL_NAME
    if name not in MODEL_REGISTRY:
        raise KeyError(f"MODEL.MODEL_NAME {name!r} is not registered; known: {', '.join(sorted(MODEL_REGISTRY))}")
    return MODEL_REGISTRY[name](cfg)


__all__ = [
    "MODEL_REGISTRY", "register_model", "build_model", "model_device", "clip_state_dict_from_cfg",
    "temporal_op_config", "TemporalClipVideo", "TemporalOpConfig", "TemporalOpError", "TEMPORAL_TYPES",
    "TEMPLATES", "ClassIndexError", "read_class_names",
]
