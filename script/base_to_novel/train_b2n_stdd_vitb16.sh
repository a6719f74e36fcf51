#!/usr/bin/env bash
# Base-to-novel with the original's recipe: STDD ViT-B/16, 8 frames x stride 16, stcross_attend (fold 32,
# scales [1,2]), distillation from frozen CLIP (ratio 2.0), 12 epochs, global batch 32, warmup 2 epochs,
# base LR 3.33e-6; each seed trains on its 16-shot base list, then base and novel are tested (3 views).
# Writes OUTPUT_DIR/b2n_<dataset>.{json,md}; an interrupted run resumes when started again.
#
# Every path is a variable: set them in the environment (DATASET=ucf101 VIDEO_ROOT=... bash ...) or edit here.
#   DATASET        k400, hmdb51, ucf101 or ssv2 (ssv2 trains without horizontal flips)
#   SPLITS         folder of your own lists in the same layout (empty = label_db/base_to_novel/<dataset>)
#   VIDEO_ROOT     the folder the listed videos are relative to (see docs/base_to_novel.md)
#   SEEDS          training seeds ("1 2 3" for k400/ssv2, "1" for hmdb51/ucf101; empty = all of the dataset)
#   PARITY         1 = the original code's behaviour (configs/BaseToNovel/..._parity.yaml)
#   NUM_GPUS       GPUs on this machine (0 = CPU). The global batch stays 32 whatever the count.
#   EXTRA_OPTS     more KEY VALUE overrides, appended last (e.g. "SOLVER.MAX_EPOCH 1").
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python}"
DATASET="${DATASET:-k400}"
VIDEO_ROOT="${VIDEO_ROOT:-$ROOT/datasets/kinetics400/videos}"
SEEDS="${SEEDS:-}"
NUM_GPUS="${NUM_GPUS:-1}"
if [ "${PARITY:-0}" = "1" ]; then
  DEFAULT_CFG="$ROOT/configs/BaseToNovel/STDD_vitb16_8x16_b2n_parity.yaml"
else
  DEFAULT_CFG="$ROOT/configs/BaseToNovel/STDD_vitb16_8x16_b2n.yaml"
fi
CFG="${CFG:-$DEFAULT_CFG}"
CLIP_WEIGHTS="${CLIP_WEIGHTS:-}"                               # empty: ViT-B-16.pt from ~/.cache/clip
TEXT_AUG_FILE="${TEXT_AUG_FILE:-}"                             # optional; {split} -> base / novel
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/base_to_novel/$DATASET}"
WORKERS="${WORKERS:-4}"
read -r -a SEED_ARGS <<< "$SEEDS"
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"
SPLITS_FLAG=()
if [ -n "${SPLITS:-}" ]; then
  SPLITS_FLAG=(--splits "$SPLITS")
fi
SEED_FLAG=()
if [ "${#SEED_ARGS[@]}" -gt 0 ]; then
  SEED_FLAG=(--seeds "${SEED_ARGS[@]}")
fi

"$PYTHON" "$ROOT/tools/base_to_novel.py" \
  --dataset "$DATASET" \
  --video-root "$VIDEO_ROOT" \
  "${SPLITS_FLAG[@]}" \
  "${SEED_FLAG[@]}" \
  --cfg "$CFG" \
  --text-aug-file "$TEXT_AUG_FILE" \
  --output-dir "$OUTPUT_DIR" \
  --opts \
  MODEL.CLIP_WEIGHTS "$CLIP_WEIGHTS" \
  NUM_GPUS "$NUM_GPUS" \
  DATA_LOADER.NUM_WORKERS "$WORKERS" \
  "${EXTRA[@]}"
