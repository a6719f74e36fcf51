#!/usr/bin/env bash
# Base-to-novel test of one checkpoint (e.g. the Kinetics-400-trained STDD, averaged): no training, the
# model is tested on the base and the novel test lists (3 temporal views x 1 crop) and B, N, HM are
# written to OUTPUT_DIR/b2n_<dataset>.{json,md}.
#
#   DATASET        k400, hmdb51, ucf101 or ssv2
#   SPLITS         folder of your own lists in the same layout (empty = label_db/base_to_novel/<dataset>)
#   VIDEO_ROOT     the folder the listed videos are relative to
#   CHECKPOINT     the checkpoint to test (model_state); empty = the initial CLIP weights
#   NUM_GPUS       GPUs on this machine (0 = CPU)
#   EXTRA_OPTS     more KEY VALUE overrides, appended last
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python}"
DATASET="${DATASET:-k400}"
VIDEO_ROOT="${VIDEO_ROOT:-$ROOT/datasets/kinetics400/videos}"
CHECKPOINT="${CHECKPOINT:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16/wa_checkpoints/swa_2_22.pth}"
CFG="${CFG:-$ROOT/configs/BaseToNovel/STDD_vitb16_8x16_b2n.yaml}"
CLIP_WEIGHTS="${CLIP_WEIGHTS:-}"
TEXT_AUG_FILE="${TEXT_AUG_FILE:-}"
NUM_GPUS="${NUM_GPUS:-1}"
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/base_to_novel_test/$DATASET}"
WORKERS="${WORKERS:-4}"
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"
SPLITS_FLAG=()
if [ -n "${SPLITS:-}" ]; then
  SPLITS_FLAG=(--splits "$SPLITS")
fi

"$PYTHON" "$ROOT/tools/base_to_novel.py" \
  --dataset "$DATASET" \
  --video-root "$VIDEO_ROOT" \
  "${SPLITS_FLAG[@]}" \
  --test-only --checkpoint "$CHECKPOINT" \
  --cfg "$CFG" \
  --text-aug-file "$TEXT_AUG_FILE" \
  --output-dir "$OUTPUT_DIR" \
  --opts \
  MODEL.CLIP_WEIGHTS "$CLIP_WEIGHTS" \
  NUM_GPUS "$NUM_GPUS" \
  DATA_LOADER.NUM_WORKERS "$WORKERS" \
  "${EXTRA[@]}"
