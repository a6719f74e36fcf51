"""CLIP in OpenAI's state-dict layout: model, weight loading, tokenizer."""

from slowfast.models.clip.loading import (
    ARCH_TO_NAME,
    PRETRAINED,
    CLIPWeightsError,
    build_clip,
    custom_clip_config,
    default_cache_dir,
    infer_clip_config,
    load_clip,
    random_clip_state_dict,
    read_state_dict,
    resolve_clip_weights,
)
from slowfast.models.clip.model import (
    CLIP,
    Attention,
    CLIPConfig,
    LayerNorm,
    QuickGELU,
    ResidualAttentionBlock,
    Transformer,
    VisionTransformer,
)
from slowfast.models.clip.tokenizer import tokenize

__all__ = [
    "ARCH_TO_NAME", "PRETRAINED", "CLIPWeightsError", "build_clip", "custom_clip_config", "default_cache_dir",
    "infer_clip_config", "load_clip", "random_clip_state_dict", "read_state_dict", "resolve_clip_weights",
    "CLIP", "Attention", "CLIPConfig", "LayerNorm", "QuickGELU", "ResidualAttentionBlock", "Transformer",
    "VisionTransformer", "tokenize",
]
