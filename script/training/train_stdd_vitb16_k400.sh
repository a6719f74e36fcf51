#!/usr/bin/env bash
# STDD on Kinetics-400 with ViT-B/16, then the average of epochs 2..22 (SWA) that the zero-shot tests use.
# Every training value is in the config (default configs/Kinetics/STDD_vitb16_8x16_k400.yaml, the paper
# recipe with our fixes; train_stdd_vitb16_k400_parity.sh uses the original code's behaviour). This script
# passes only paths and the GPU count; see docs/reproducing.md.
#
# Set the variables in the environment (DATA_DIR=... bash script/training/...) or edit them here:
#   NUM_GPUS       GPUs on this machine (0 = CPU). The global batch stays the config's whatever the count.
#   DATA_DIR       folder of train.csv / val.csv / test.csv (tools/prepare_dataset.py kinetics)
#   VIDEO_PREFIX   folder the CSV paths are relative to
#   TEXT_FEATS     [K, N, E] text-feature file for the K400 classes (utils/text_prompts.py)
#   CLIP_WEIGHTS   CLIP weights file; empty = ViT-B-16.pt from the CLIP cache
# Optional, for short runs only (unset = the config's value): EPOCHS, TRAIN_BATCH, TEST_BATCH, TEXT_AUG,
# MIXED_PRECISION, WORKERS; WA_START / WA_END (epochs averaged, default 2 .. the last); EXTRA_OPTS (more
# KEY VALUE overrides, appended last).
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python}"
NUM_GPUS="${NUM_GPUS:-4}"
CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitb16_8x16_k400.yaml}"
DATA_DIR="${DATA_DIR:-$ROOT/datasets/kinetics400}"
VIDEO_PREFIX="${VIDEO_PREFIX:-$ROOT/datasets/kinetics400/videos}"
INDEX_FILE="${INDEX_FILE:-$ROOT/label_db/k400-index2cls.json}"
TEXT_FEATS="${TEXT_FEATS:-$ROOT/text_feats/classes_text_feats_k400_tpl8_xmix_ViT-B_16.pt}"
CLIP_WEIGHTS="${CLIP_WEIGHTS:-}"
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16}"
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"

opts=(
  DATA.PATH_TO_DATA_DIR "$DATA_DIR"
  DATA.PATH_PREFIX "$VIDEO_PREFIX"
  DATA.INDEX_LABEL_MAPPING_FILE "$INDEX_FILE"
  DATA.TEXT_AUG_FEATURE_FILE "$TEXT_FEATS"
  MODEL.CLIP_WEIGHTS "$CLIP_WEIGHTS"
  OUTPUT_DIR "$OUTPUT_DIR"
  NUM_GPUS "$NUM_GPUS"
)
# Short-run overrides: a KEY VALUE pair only when its variable is set.
add_opt() { if [[ -n "${!2:-}" ]]; then opts+=("$1" "${!2}"); fi; }
add_opt SOLVER.MAX_EPOCH EPOCHS
add_opt TRAIN.EVAL_PERIOD EPOCHS
add_opt TRAIN.BATCH_SIZE TRAIN_BATCH
add_opt TEST.BATCH_SIZE TEST_BATCH
add_opt DATA.TEXT_AUG TEXT_AUG
add_opt TRAIN.MIXED_PRECISION MIXED_PRECISION
add_opt DATA_LOADER.NUM_WORKERS WORKERS

"$PYTHON" "$ROOT/tools/run_net.py" --cfg "$CFG" --opts "${opts[@]}" "${EXTRA[@]}"

# Average the epoch checkpoints 2..22: the model the paper tests zero-shot.
wa_range=(--start "${WA_START:-2}")
if [[ -n "${WA_END:-}" ]]; then wa_range+=(--end "$WA_END"); fi
"$PYTHON" "$ROOT/weight_average_tool.py" \
  --source-dir "$OUTPUT_DIR/checkpoints" \
  --output-dir "$OUTPUT_DIR/wa_checkpoints" \
  "${wa_range[@]}" \
  --methods swa
echo "averaged checkpoint in $OUTPUT_DIR/wa_checkpoints (swa_<start>_<end>.pth)"
