#!/usr/bin/env bash
# The paper's recipe: STDD on Kinetics-400, ViT-B/16, 8 frames x stride 16, channel fold 32, temporal
# scales [1,2], distillation from frozen CLIP (ratio 2.0), LLM text augmentation, 22 epochs, global batch
# 32, per-iteration warmup (2 epochs) + cosine from 3.33e-6. Then average epochs 2..22 (SWA) and test.
#
# Every path is a variable: set them in the environment (DATA_DIR=... bash script/training/...) or edit here.
#   NUM_GPUS       GPUs on this machine (0 = CPU). The global batch stays TRAIN_BATCH whatever the count.
#   EXTRA_OPTS     more KEY VALUE overrides, appended last (e.g. "SOLVER.MAX_EPOCH 1").
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python}"
NUM_GPUS="${NUM_GPUS:-4}"
CFG="${CFG:-$ROOT/configs/Kinetics/TemporalCLIP_vitb16_8x16_STAdapter.yaml}"
DATA_DIR="${DATA_DIR:-$ROOT/datasets/kinetics400}"                  # train.csv / val.csv / test.csv (tools/prepare_dataset.py)
VIDEO_PREFIX="${VIDEO_PREFIX:-$ROOT/datasets/kinetics400/videos}"   # joined to each CSV path
INDEX_FILE="${INDEX_FILE:-$DATA_DIR/index2cls.json}"            # class-index JSON
TEXT_AUG="${TEXT_AUG:-True}"
TEXT_FEATS="${TEXT_FEATS:-$ROOT/text_feats/classes_text_feats_k400_tpl8_xmix_ViT-B_16.pt}"  # utils/text_prompts.py
CLIP_WEIGHTS="${CLIP_WEIGHTS:-}"                                 # empty: ViT-B-16.pt from ~/.cache/clip
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16}"
TRAIN_BATCH="${TRAIN_BATCH:-32}"
TEST_BATCH="${TEST_BATCH:-64}"
EPOCHS="${EPOCHS:-22}"
WORKERS="${WORKERS:-4}"
MIXED_PRECISION="${MIXED_PRECISION:-True}"
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"

"$PYTHON" "$ROOT/tools/run_net.py" \
  --cfg "$CFG" \
  --opts \
  DATA.PATH_TO_DATA_DIR "$DATA_DIR" \
  DATA.PATH_PREFIX "$VIDEO_PREFIX" \
  DATA.PATH_LABEL_SEPARATOR , \
  DATA.INDEX_LABEL_MAPPING_FILE "$INDEX_FILE" \
  DATA.TEXT_AUG "$TEXT_AUG" \
  DATA.TEXT_AUG_FEATURE_FILE "$TEXT_FEATS" \
  MODEL.CLIP_WEIGHTS "$CLIP_WEIGHTS" \
  TRAIN.ENABLE True \
  TEST.ENABLE False \
  OUTPUT_DIR "$OUTPUT_DIR" \
  TRAIN.BATCH_SIZE "$TRAIN_BATCH" \
  TEST.BATCH_SIZE "$TEST_BATCH" \
  TEST.NUM_ENSEMBLE_VIEWS 3 \
  TEST.NUM_SPATIAL_CROPS 1 \
  NUM_GPUS "$NUM_GPUS" \
  SOLVER.MAX_EPOCH "$EPOCHS" \
  SOLVER.WARMUP_EPOCHS 2.0 \
  SOLVER.BASE_LR 3.33e-6 \
  SOLVER.WARMUP_START_LR 3.33e-8 \
  SOLVER.COSINE_END_LR 3.33e-8 \
  TRAIN.MIXED_PRECISION "$MIXED_PRECISION" \
  DATA.DECODING_BACKEND pyav \
  MODEL.TEMPORAL_MODELING_TYPE stcross_attend \
  MIXUP.ENABLE False \
  AUG.ENABLE False \
  AUG.NUM_SAMPLE 1 \
  TRAIN.EVAL_PERIOD "$EPOCHS" \
  TRAIN.CHECKPOINT_PERIOD 1 \
  MODEL.LOSS_FUNC soft_cross_entropy \
  TRAIN.LINEAR_CONNECT_CLIMB False \
  TRAIN.LINEAR_CONNECT_LOSS_RATIO 0.0 \
  MODEL.CHANNEL_FOLD 32 \
  MODEL.TEMPORAL_SCALE "[1,2]" \
  MODEL.RAW_MODEL_DISTILLATION True \
  MODEL.KEEP_RAW_MODEL True \
  MODEL.DISTILLATION_RATIO 2.0 \
  DATA_LOADER.NUM_WORKERS "$WORKERS" \
  "${EXTRA[@]}"

# Average the epoch checkpoints 2..22 (the model the paper tests zero-shot).
"$PYTHON" "$ROOT/weight_average_tool.py" \
  --source-dir "$OUTPUT_DIR/checkpoints" \
  --output-dir "$OUTPUT_DIR/wa_checkpoints" \
  --start "${WA_START:-2}" --end "${WA_END:-$EPOCHS}" \
  --methods swa
echo "averaged checkpoint: $OUTPUT_DIR/wa_checkpoints/swa_${WA_START:-2}_${WA_END:-$EPOCHS}.pth"
