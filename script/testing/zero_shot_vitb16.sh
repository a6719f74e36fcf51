#!/usr/bin/env bash
# Zero-shot tests of the averaged STDD checkpoint on UCF101, HMDB51 and Kinetics-600 (3 splits each,
# 3 temporal views x 1 centre crop, mean ± std), as in the paper's table. The model and test settings come
# from the config the checkpoint was trained with (default configs/Kinetics/STDD_vitb16_8x16_k400.yaml);
# the classes are the official lists shipped in label_db/. This script passes only paths and the GPU count.
#
# Every path is a variable: set them in the environment or edit here. Data roots are the folders written by
# `tools/prepare_dataset.py {ucf101,hmdb51,k600-zeroshot}`; *_VIDEOS are the video folders the CSVs point into.
#   BENCHMARKS     which protocols to run (default "ucf101 hmdb51 k600"; k400 gives the closed-set number)
#   *_TEXT_FEATS   optional text-feature files (utils/text_prompts.py) to test with DATA.TEXT_AUG
#   PROTOCOL       test settings (default stdd: 3 views x 1 crop, the paper's protocol; original-b16 or
#                  original-l14: those of the original code's test scripts, see docs/zero_shot.md)
#   TEST_BATCH, WORKERS  optional (unset = the config's values); EXTRA_OPTS: more KEY VALUE overrides
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
PYTHON="${PYTHON:-python}"
NUM_GPUS="${NUM_GPUS:-1}"
CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitb16_8x16_k400.yaml}"
CHECKPOINT="${CHECKPOINT:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16/wa_checkpoints/swa_2_22.pth}"
CLIP_WEIGHTS="${CLIP_WEIGHTS:-}"                         # empty: ViT-B-16.pt from ~/.cache/clip
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/zero_shot/vitb16}"
BENCHMARKS="${BENCHMARKS:-ucf101 hmdb51 k600}"
PROTOCOL="${PROTOCOL:-stdd}"
UCF_ROOT="${UCF_ROOT:-$ROOT/datasets/ucf101}"
UCF_VIDEOS="${UCF_VIDEOS:-$ROOT/datasets/ucf101/videos}"
UCF_TEXT_FEATS="${UCF_TEXT_FEATS:-}"
HMDB_ROOT="${HMDB_ROOT:-$ROOT/datasets/hmdb51}"
HMDB_VIDEOS="${HMDB_VIDEOS:-$ROOT/datasets/hmdb51/videos}"
HMDB_TEXT_FEATS="${HMDB_TEXT_FEATS:-}"
K600_ROOT="${K600_ROOT:-$ROOT/datasets/k600_zeroshot}"
K600_VIDEOS="${K600_VIDEOS:-$ROOT/datasets/kinetics600/videos}"
K600_TEXT_FEATS="${K600_TEXT_FEATS:-}"                   # may contain {split}
K400_ROOT="${K400_ROOT:-$ROOT/datasets/kinetics400}"
K400_VIDEOS="${K400_VIDEOS:-$ROOT/datasets/kinetics400/videos}"
K400_TEXT_FEATS="${K400_TEXT_FEATS:-}"
read -r -a EXTRA <<< "${EXTRA_OPTS:-}"

opts=(NUM_GPUS "$NUM_GPUS" MODEL.CLIP_WEIGHTS "$CLIP_WEIGHTS")
if [[ -n "${TEST_BATCH:-}" ]]; then opts+=(TEST.BATCH_SIZE "$TEST_BATCH"); fi
if [[ -n "${WORKERS:-}" ]]; then opts+=(DATA_LOADER.NUM_WORKERS "$WORKERS"); fi

for benchmark in $BENCHMARKS; do
  case "$benchmark" in
    ucf101) data_root="$UCF_ROOT"; videos="$UCF_VIDEOS"; feats="$UCF_TEXT_FEATS" ;;
    hmdb51) data_root="$HMDB_ROOT"; videos="$HMDB_VIDEOS"; feats="$HMDB_TEXT_FEATS" ;;
    k600) data_root="$K600_ROOT"; videos="$K600_VIDEOS"; feats="$K600_TEXT_FEATS" ;;
    k400) data_root="$K400_ROOT"; videos="$K400_VIDEOS"; feats="$K400_TEXT_FEATS" ;;
    *) echo "unknown benchmark: $benchmark (ucf101, hmdb51, k600, k400)" >&2; exit 2 ;;
  esac
  "$PYTHON" "$ROOT/tools/zero_shot.py" \
    --benchmark "$benchmark" \
    --data-root "$data_root" \
    --video-prefix "$videos" \
    --checkpoint "$CHECKPOINT" \
    --cfg "$CFG" \
    --protocol "$PROTOCOL" \
    --text-aug-file "$feats" \
    --output-dir "$OUTPUT_DIR/$benchmark" \
    --opts "${opts[@]}" "${EXTRA[@]}"
done
