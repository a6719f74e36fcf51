"""Closed sets of values that several layers check: each written once, here (no torch, no project imports)."""

from __future__ import annotations

from typing import Optional

# Temporal operators around each spatial attention (docs/method.md). None is plain per-frame CLIP.
TEMPORAL_TYPES: tuple[Optional[str], ...] = (
    None, "stcross_attend", "stadapt_zeroinit", "cross_frame_attend", "expand_temporal_view",
)
# Spellings of "no operator" accepted in YAML files and on the command line.
NONE_SPELLINGS = ("None", "none", "")
# What the MLP of an STDD block reads: the full-attention branch (the original) or the merged tokens.
STCROSS_MLP_INPUTS = ("full", "merged")
# Short names of the OpenAI releases, and the name of the random-init CLIP built from MODEL.CUSTOM_CLIP.
ARCH_TO_OPENAI_NAME = {"vitb32": "ViT-B/32", "vitb16": "ViT-B/16", "vitl14": "ViT-L/14"}
# The same releases as open_clip model names (pretrained tag OPENAI_TAG); MODEL.ARCH also takes any open_clip ViT name.
ARCH_TO_OPEN_CLIP = {"vitb32": "ViT-B-32", "vitb16": "ViT-B-16", "vitl14": "ViT-L-14"}
OPENAI_TAG = "openai"
CUSTOM_ARCH = "custom"
ARCHS = (*ARCH_TO_OPENAI_NAME, CUSTOM_ARCH)
LOSSES = ("cross_entropy", "soft_cross_entropy")
ENSEMBLE_METHODS = ("sum", "max")
# Names of TRAIN.DATASET / TEST.DATASET; every one reads the same CSV list format.
DATASET_NAMES = ("kinetics", "ucf101", "hmdb51", "k600", "synthetic")
# MODEL.CUSTOM_CLIP.VOCAB_SIZE must hold every id of CLIP's BPE tokenizer (open_clip's SimpleTokenizer).
CLIP_VOCAB_SIZE = 49408
# Autocast dtype of TRAIN.MIXED_PRECISION: auto = bf16 where the device supports it, else fp16 with a scaler.
MIXED_PRECISION_DTYPES = ("auto", "float16", "bfloat16")


# The temporal operator's settings, each once: field of `slowfast.models.TemporalOpConfig` -> config key.
# `build_model` reads them through this table, and a checkpoint is compared with the config on the keys of
# OPERATOR_WEIGHT_FIELDS (they decide what the trained weights mean; the other two are how the same
# weights run).
OPERATOR_FIELDS: dict[str, str] = {
    "type": "MODEL.TEMPORAL_MODELING_TYPE",
    "num_frames": "DATA.NUM_FRAMES",
    "mask_rate": "MODEL.MASK_RATE",
    "mask_stride": "MODEL.MASK_STRIDE",
    "spatial_repeat": "MODEL.SPATIAL_REPEAT",
    "temporal_shuffle": "MODEL.TEMPORAL_SHUFFLE",
    "deterministic_test_masks": "MODEL.DETERMINISTIC_TEST_MASKS",
    "channel_fold": "MODEL.CHANNEL_FOLD",
    "temporal_scale": "MODEL.TEMPORAL_SCALE",
    "mlp_input": "MODEL.STCROSS_MLP_INPUT",
    "fused_attention": "MODEL.FUSED_ATTENTION",
}
OPERATOR_WEIGHT_FIELDS = ("mask_rate", "mask_stride", "spatial_repeat", "temporal_shuffle", "channel_fold",
                          "temporal_scale", "mlp_input")


def normalize_temporal_type(value: Optional[str]) -> Optional[str]:
    """Map every spelling of "no operator" to None; other values are returned unchanged (checked elsewhere)."""
    return None if value is None or value in NONE_SPELLINGS else value
