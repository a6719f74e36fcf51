"""Only what open_clip does not do: reading weight files safely, and fitting open_clip's towers to the video model."""

from slowfast.clip.tokenizer import TextTooLongError, tokenize
from slowfast.clip.towers import (
    CLIP,
    BlockFactory,
    CLIPConfig,
    build_clip,
    check_arch,
    check_video_tower,
    custom_clip_config,
    infer_clip_config,
    load_clip,
    load_strict,
    model_config_for,
    new_clip,
    random_clip_state_dict,
)
from slowfast.clip.weights import (
    OPENAI_RELEASE_SHA256,
    CLIPWeightsError,
    default_cache_dir,
    is_torchscript_archive,
    read_state_dict,
    read_state_file,
    read_torchscript_weights,
    resolve_pretrained,
)

__all__ = [
    "CLIP", "BlockFactory", "CLIPConfig", "build_clip", "check_arch", "check_video_tower", "custom_clip_config",
    "infer_clip_config", "load_clip", "load_strict", "model_config_for", "new_clip", "random_clip_state_dict",
    "OPENAI_RELEASE_SHA256", "CLIPWeightsError", "default_cache_dir", "is_torchscript_archive", "read_state_dict",
    "read_state_file", "read_torchscript_weights", "resolve_pretrained", "tokenize", "TextTooLongError",
]
