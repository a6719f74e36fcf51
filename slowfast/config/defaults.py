"""The whole configuration tree, every key documented where it is defined.

`get_cfg()` returns a fresh copy of the defaults. YAML files and `--opts` are merged through
`slowfast.config` which refuses unknown keys (naming the closest valid ones) and wrong types
(naming the key, the expected type and the given one); `assert_and_infer_cfg` then checks every numeric
value against its rule in `slowfast/config/ranges.py`. A key either changes behaviour or does not
exist: PySlowFast's AVA, multigrid, MoE and detection options are deliberately absent. The few keys kept
only so that the original code's configs and command lines still parse are listed in
`slowfast/config/compatibility.py` (accepted, logged when set, marked in the reference).

The comment on the line above a key (or at its end) is its documentation; `tools/config_reference.py`
turns these comments into docs/config_reference.md.
"""

from yacs.config import CfgNode

from slowfast.config.custom_config import add_custom_config

_C = CfgNode()

# ---------------------------------------------------------------------------------------------------
# Global
# ---------------------------------------------------------------------------------------------------
# Number of GPUs per machine; 0 runs on the CPU in-process. N > 1 spawns N processes (one per GPU).
_C.NUM_GPUS = 1
# Number of machines (shards) taking part in distributed training.
_C.NUM_SHARDS = 1
# Index of this machine among NUM_SHARDS: 0 .. NUM_SHARDS - 1.
_C.SHARD_ID = 0
# Number of CPU processes (gloo backend) to run when NUM_GPUS is 0; tests use 2 to check DDP on CPU.
_C.NUM_CPU_PROCS = 1
# Seed of numpy, random and torch (per rank offset for data workers).
_C.RNG_SEED = 0
# Where checkpoints, logs, predictions and reports are written.
_C.OUTPUT_DIR = "./output"
# Log (text, JSON and TensorBoard) every LOG_PERIOD training iterations.
_C.LOG_PERIOD = 10
# Log parameter counts (total, trainable, per group) when a model is built.
_C.LOG_MODEL_INFO = True
# torch.distributed backend for GPU runs ("nccl"); CPU runs always use "gloo".
_C.DIST_BACKEND = "nccl"

# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------
_C.TRAIN = CfgNode()
# Run training.
_C.TRAIN.ENABLE = True
# Name of the training dataset: kinetics, ucf101, hmdb51, k600 or synthetic (others are refused). Every name
# reads the same CSV list format, so the name only tells the reader which dataset a config is about.
_C.TRAIN.DATASET = "kinetics"
# Global batch size, split evenly over all processes of all machines; also the validation batch size.
_C.TRAIN.BATCH_SIZE = 64
# Evaluate on the val split every EVAL_PERIOD epochs and after the last epoch.
_C.TRAIN.EVAL_PERIOD = 10
# Save a checkpoint every CHECKPOINT_PERIOD epochs and after the last epoch.
_C.TRAIN.CHECKPOINT_PERIOD = 10
# Resume from the newest complete checkpoint in OUTPUT_DIR/checkpoints.
_C.TRAIN.AUTO_RESUME = True
# Checkpoint to initialise from when not resuming ("" = none).
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# Mixed precision: autocast to MIXED_PRECISION_DTYPE in training and testing.
_C.TRAIN.MIXED_PRECISION = False
# Autocast dtype of MIXED_PRECISION: "float16" (with a grad scaler on CUDA, as the original code),
# "bfloat16" (no scaler: bf16 has fp32's exponent range), or "auto" = bfloat16 where the GPU supports it
# (torch.cuda.is_bf16_supported(): Ampere and newer), else float16; on the CPU always bfloat16.
_C.TRAIN.MIXED_PRECISION_DTYPE = "auto"
# Raw CLIP weights (OpenAI format) used by LINEAR_CONNECT_CLIMB; "" = the backbone's own weights.
_C.TRAIN.CLIP_ORI_PATH = ""
# Open-VCLIP interpolation regulariser: an extra pass with CLIP keys interpolated toward raw CLIP.
_C.TRAIN.LINEAR_CONNECT_CLIMB = False
# Weight of the interpolated pass's loss.
_C.TRAIN.LINEAR_CONNECT_LOSS_RATIO = 1.0
# Lower bound of the interpolation coefficient lambda ~ U(L, R).
_C.TRAIN.LINEAR_CONNECT_SAMPLE_L = 0.4
# Upper bound of the interpolation coefficient lambda ~ U(L, R).
_C.TRAIN.LINEAR_CONNECT_SAMPLE_R = 0.6
# Load TRAIN.CUSTOM_LOAD_FILE's model_state (non-strict) before training.
_C.TRAIN.CUSTOM_LOAD = False
# File for TRAIN.CUSTOM_LOAD.
_C.TRAIN.CUSTOM_LOAD_FILE = ""

# ---------------------------------------------------------------------------------------------------
# Testing
# ---------------------------------------------------------------------------------------------------
_C.TEST = CfgNode()
# Run the multi-view test (after training when TRAIN.ENABLE).
_C.TEST.ENABLE = True
# Name of the test dataset (see TRAIN.DATASET).
_C.TEST.DATASET = "kinetics"
# Global test batch size (clips, not videos).
_C.TEST.BATCH_SIZE = 8
# Temporal views per video, evenly spaced from the start to the end of the video.
_C.TEST.NUM_ENSEMBLE_VIEWS = 3
# Spatial crops per view: 1 (centre) or 3 (left/centre/right or top/centre/bottom).
_C.TEST.NUM_SPATIAL_CROPS = 1
# Checkpoint to test ("" = newest in OUTPUT_DIR/checkpoints, else TRAIN.CHECKPOINT_FILE_PATH, else initial weights).
_C.TEST.CHECKPOINT_FILE_PATH = ""
# File name (under OUTPUT_DIR) for the per-video logits and labels ("" = test_results.pt).
_C.TEST.SAVE_RESULTS_PATH = ""
# Load TEST.CUSTOM_LOAD_FILE's model_state (an averaged or trained checkpoint) before testing.
_C.TEST.CUSTOM_LOAD = False
# File for TEST.CUSTOM_LOAD.
_C.TEST.CUSTOM_LOAD_FILE = ""
# Weight-space patching: theta = r * theta_CLIP + (1 - r) * theta for the CLIP keys before testing.
_C.TEST.PATCHING_MODEL = False
# r of TEST.PATCHING_MODEL (0 = fine-tuned model, 1 = raw CLIP).
_C.TEST.PATCHING_RATIO = 0.5
# Raw CLIP weights for TEST.PATCHING_MODEL ("" = the backbone's own weights, MODEL.CLIP_WEIGHTS / MODEL.ARCH).
_C.TEST.CLIP_ORI_PATH = ""
# Read test_openset.csv instead of test.csv.
_C.TEST.OPENSET = False
# Evaluate (validation and test) under autocast when TRAIN.MIXED_PRECISION is on; False evaluates in fp32,
# as the original did (its autocast covered only the training step).
_C.TEST.MIXED_PRECISION = True

# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------
_C.DATA = CfgNode()
# Folder holding {train,val,test}.csv.
_C.DATA.PATH_TO_DATA_DIR = ""
# Prefix joined to every path of the CSVs ("" = paths are relative to PATH_TO_DATA_DIR or absolute).
_C.DATA.PATH_PREFIX = ""
# Separator between path and label in the CSVs.
_C.DATA.PATH_LABEL_SEPARATOR = " "
# Class-index JSON {"0": "class name", ...}: class names for the text classifier and label range check.
_C.DATA.INDEX_LABEL_MAPPING_FILE = ""
# Use the [K, N, E] text-feature file (LLM extended prompts) instead of the 28-template classifier.
_C.DATA.TEXT_AUG = False
# The [K, N, E] feature file made by utils/text_prompts.py.
_C.DATA.TEXT_AUG_FEATURE_FILE = ""
# Frames per clip (T).
_C.DATA.NUM_FRAMES = 8
# Distance between sampled frames, in frames at TARGET_FPS.
_C.DATA.SAMPLING_RATE = 8
# Frame rate the sampling rate refers to; videos at other rates are sampled in time, not in frames.
_C.DATA.TARGET_FPS = 30
# Reproduce the original's pyav sampling: on MP4/AVI stride ~18 instead of 16 and test views not reaching the
# end, the window placed from the stream's timestamps as the original did; Matroska/WebM decoded whole and
# offset-sampled (docs/differences.md).
_C.DATA.ORIGINAL_SAMPLING = False
# Video decoder: only "pyav" is accepted (the frames are decoded by PyAV).
_C.DATA.DECODING_BACKEND = "pyav"
# Short-side range [min, max] of the random training resize; test uses TEST_CROP_SIZE.
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]
# Training (and validation) crop size.
_C.DATA.TRAIN_CROP_SIZE = 224
# Test short side and crop size.
_C.DATA.TEST_CROP_SIZE = 256
# Per-channel mean (RGB, 0..1) for normalisation.
_C.DATA.MEAN = [0.45, 0.45, 0.45]
# Per-channel std (RGB, 0..1) for normalisation.
_C.DATA.STD = [0.225, 0.225, 0.225]
# Random horizontal flip in training.
_C.DATA.RANDOM_FLIP = True
# How test views are combined per video: "sum" of logits or element-wise "max".
_C.DATA.ENSEMBLE_METHOD = "sum"
# Validation like the original: random temporal and spatial sampling with flips (default: deterministic centre).
_C.DATA.RANDOM_VAL = False
# Resize like the original: normalise first, then bilinear on the float frames without antialiasing
# (default False: antialiased bilinear on the uint8 frames, which does not alias when shrinking).
_C.DATA.ORIGINAL_RESIZE = False

# ---------------------------------------------------------------------------------------------------
# Data loader
# ---------------------------------------------------------------------------------------------------
_C.DATA_LOADER = CfgNode()
# Worker processes per loader (0 = decode in the main process).
_C.DATA_LOADER.NUM_WORKERS = 2
# Pin host memory for faster host-to-GPU copies (ignored on CPU).
_C.DATA_LOADER.PIN_MEMORY = True
# Let PyAV decode with several threads when a clip is read in one forward pass (files with long keyframe
# intervals); clips read by seeking to each frame (re-encoded copies) decode on one thread.
_C.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE = True
# How many other videos to try when a training video cannot be decoded.
_C.DATA_LOADER.NUM_RETRIES = 10

# ---------------------------------------------------------------------------------------------------
# Augmentation (STDD uses none; kept so the paper's command line parses, True is refused)
# ---------------------------------------------------------------------------------------------------
_C.AUG = CfgNode()
# RandAugment / random erasing: not supported (STDD trains without); True is refused.
_C.AUG.ENABLE = False
# Copies of each training video per iteration; only 1 is supported (others are refused).
_C.AUG.NUM_SAMPLE = 1
_C.MIXUP = CfgNode()
# Mixup / CutMix: not supported (STDD trains without); True is refused.
_C.MIXUP.ENABLE = False

# ---------------------------------------------------------------------------------------------------
# Optimiser and learning-rate schedule
# ---------------------------------------------------------------------------------------------------
_C.SOLVER = CfgNode()
# "adamw" (the paper) or "sgd".
_C.SOLVER.OPTIMIZING_METHOD = "adamw"
# Peak learning rate (reached at the end of warmup).
_C.SOLVER.BASE_LR = 1e-5
# Learning rate at iteration 0 of the linear warmup.
_C.SOLVER.WARMUP_START_LR = 1e-7
# Learning rate at the end of the cosine.
_C.SOLVER.COSINE_END_LR = 1e-7
# Length of the linear warmup, in (fractional) epochs.
_C.SOLVER.WARMUP_EPOCHS = 1.0
# Number of training epochs.
_C.SOLVER.MAX_EPOCH = 12
# Learning-rate policy: "cosine" (per-iteration, with warmup) or "constant".
_C.SOLVER.LR_POLICY = "cosine"
# Start the cosine at the end of warmup (True, the paper) rather than at epoch 0.
_C.SOLVER.COSINE_AFTER_WARMUP = True
# Restart the cosine every COSINE_RESTART_EPOCH epochs after warmup (0 = never).
_C.SOLVER.COSINE_RESTART_EPOCH = 0
# Decoupled weight decay of the "decay" parameter group.
_C.SOLVER.WEIGHT_DECAY = 0.01
# No weight decay on 1-D parameters and biases (LayerNorm, biases, class embedding).
_C.SOLVER.ZERO_WD_1D_PARAM = True
# Clip the global gradient L2 norm to this value (after unscaling); None or 0 = no clipping.
_C.SOLVER.CLIP_GRAD_L2NORM = None
# Adam betas.
_C.SOLVER.BETAS = (0.9, 0.999)
# SGD momentum (unused by AdamW).
_C.SOLVER.MOMENTUM = 0.9
# In PySlowFast TRAIN.BATCH_SIZE is per machine, so NUM_SHARDS machines train with NUM_SHARDS times the
# batch and this key scaled the learning rates to match. Here TRAIN.BATCH_SIZE is the global batch (split
# over all processes of all machines), so the batch and the learning rates are the same on 1 or N machines
# and no scaling applies.
_C.SOLVER.BASE_LR_SCALE_NUM_SHARDS = False

# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
_C.MODEL = CfgNode()
# Registered model class built by slowfast.models.build_model.
_C.MODEL.MODEL_NAME = "TemporalClipVideo"
# CLIP architecture: vitb32, vitb16, vitl14 (OpenAI's), custom (random init, CUSTOM_CLIP sizes), any open_clip ViT
# model name (ViT-B-16, ViT-L-14-336, ViT-H-14-quickgelu, ...) or an open_clip model-config .json (docs/backbones.md).
_C.MODEL.ARCH = "vitb16"
# CLIP weights: a file (OpenAI archive or state dict, open_clip state dict), an open_clip pretrained tag of ARCH
# (openai, laion2b_s34b_b88k, ...) or hf-hub:ORG/NAME; "" = the openai tag (ARCH vitb32/vitb16/vitl14).
_C.MODEL.CLIP_WEIGHTS = ""
# Where pretrained tags are looked up and downloaded by open_clip ("" = $STDD_CLIP_CACHE or ~/.cache/clip).
_C.MODEL.CLIP_CACHE_DIR = ""
# Number of classes of the label set being trained or tested; must match the class-index file.
_C.MODEL.NUM_CLASSES = 400
# Loss: "cross_entropy" or "soft_cross_entropy" (identical for hard labels).
_C.MODEL.LOSS_FUNC = "cross_entropy"
# Temporal operator around each spatial attention: None, stcross_attend (STDD), stadapt_zeroinit,
# cross_frame_attend, expand_temporal_view.
_C.MODEL.TEMPORAL_MODELING_TYPE = None
# STDD: fraction of patch tokens dropped per frame by the window mask.
_C.MODEL.MASK_RATE = 0.5
# STDD: mask window (t, h, w); t must be 1 and the patch grid divisible by h and w.
_C.MODEL.MASK_STRIDE = [1, 2, 2]
# STDD: one mask phase per sample shared by all windows (True) or one per window (False).
_C.MODEL.SPATIAL_REPEAT = True
# STDD: randomly permute the per-frame mask phases (in training; in testing too unless DETERMINISTIC_TEST_MASKS).
_C.MODEL.TEMPORAL_SHUFFLE = True
# STDD: make test-time masks fixed (no shuffle), so inference is repeatable; False = the original.
_C.MODEL.DETERMINISTIC_TEST_MASKS = False
# STDD: 1/CHANNEL_FOLD of the width is the shifted channel group d0 = D // CHANNEL_FOLD.
_C.MODEL.CHANNEL_FOLD = 64
# STDD: list of temporal shift scales; one masked attention pass per scale.
_C.MODEL.TEMPORAL_SCALE = [1]
# STDD: the MLP reads the full-attention branch ("full", the original) or the merged tokens ("merged").
_C.MODEL.STCROSS_MLP_INPUT = "full"
# Keep a frozen copy of plain CLIP (the distillation teacher, and the ensemble at test time).
_C.MODEL.KEEP_RAW_MODEL = False
# Cosine feature distillation from the frozen raw CLIP (needs KEEP_RAW_MODEL).
_C.MODEL.RAW_MODEL_DISTILLATION = False
# Weight of the distillation loss.
_C.MODEL.DISTILLATION_RATIO = 1.0
# Distillation loss carries gradient (FROSTER's intent); False reproduces the original (logged only).
_C.MODEL.DISTILLATION_GRAD = True
# At test time, blend raw-CLIP and student logits (needs KEEP_RAW_MODEL).
_C.MODEL.ENSEMBLE_PRED = False
# Weight of the raw-CLIP logits in MODEL.ENSEMBLE_PRED.
_C.MODEL.ENSEMBLE_RAWMODEL_RATIO = 0.0
# Text context length (tokens) for the text tower.
_C.MODEL.CONTEXT_LENGTH = 77
# Activation checkpointing of the visual blocks (less memory, ~30 % more compute).
_C.MODEL.USE_CHECKPOINT = False
# DDP static_graph (faster when the set of used parameters never changes).
_C.MODEL.STATIC_GRAPH = False
# torch.compile the visual tower (GPU speed-up; off by default).
_C.MODEL.COMPILE = False
# Use F.scaled_dot_product_attention (fused kernels); False uses an explicit softmax(QK^T)V.
_C.MODEL.FUSED_ATTENTION = True
# Sizes of the randomly initialised CLIP built when MODEL.ARCH is "custom".
_C.MODEL.CUSTOM_CLIP = CfgNode()
# Joint embedding dimension E.
_C.MODEL.CUSTOM_CLIP.EMBED_DIM = 64
# Image side in pixels (a multiple of VISION_PATCH).
_C.MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION = 64
# Patch size of the image tower.
_C.MODEL.CUSTOM_CLIP.VISION_PATCH = 8
# Width D of the image tower.
_C.MODEL.CUSTOM_CLIP.VISION_WIDTH = 128
# Blocks of the image tower.
_C.MODEL.CUSTOM_CLIP.VISION_LAYERS = 4
# Attention heads of the image tower.
_C.MODEL.CUSTOM_CLIP.VISION_HEADS = 2
# Width of the text tower.
_C.MODEL.CUSTOM_CLIP.TEXT_WIDTH = 64
# Blocks of the text tower.
_C.MODEL.CUSTOM_CLIP.TEXT_LAYERS = 2
# Attention heads of the text tower.
_C.MODEL.CUSTOM_CLIP.TEXT_HEADS = 2
# Vocabulary size (49408 = CLIP's BPE vocabulary, needed by the tokenizer).
_C.MODEL.CUSTOM_CLIP.VOCAB_SIZE = 49408
# Seed of the random initialisation (the same seed gives the same CLIP on every rank and run).
_C.MODEL.CUSTOM_CLIP.SEED = 0

# ---------------------------------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------------------------------
_C.TENSORBOARD = CfgNode()
# Write TensorBoard scalars (loss, lr, accuracy, grad norm, throughput) to OUTPUT_DIR/runs.
_C.TENSORBOARD.ENABLE = False
# Log directory ("" = OUTPUT_DIR/runs).
_C.TENSORBOARD.LOG_DIR = ""


def get_cfg() -> CfgNode:
    """A fresh copy of the default configuration (with the keys of `custom_config`)."""
    cfg = _C.clone()
    add_custom_config(cfg)
    return cfg
