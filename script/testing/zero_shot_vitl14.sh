#!/usr/bin/env bash
# Zero-shot tests of the averaged ViT-L/14 STDD checkpoint: zero_shot_vitb16.sh with the L/14 config,
# checkpoint and output folder. All variables of that script apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ROOT:-$(cd "$HERE/../.." && pwd)}"
export ROOT
export CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitl14_8x16_k400.yaml}"
export CHECKPOINT="${CHECKPOINT:-$ROOT/output/STDD_ch32_ts1+2/vitl14_8x16/wa_checkpoints/swa_2_22.pth}"
export OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/zero_shot/vitl14}"
exec bash "$HERE/zero_shot_vitb16.sh"
