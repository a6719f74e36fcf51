#!/usr/bin/env bash
# Zero-shot tests of the averaged parity checkpoint (script/training/train_stdd_vitb16_k400_parity.sh):
# zero_shot_vitb16.sh with the parity config (original sampling, resize and fp32 evaluation), its checkpoint
# and its own output folder. All variables of that script apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ROOT:-$(cd "$HERE/../.." && pwd)}"
export ROOT
export CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitb16_8x16_k400_parity.yaml}"
export CHECKPOINT="${CHECKPOINT:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16_parity/wa_checkpoints/swa_2_22.pth}"
export OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/zero_shot/vitb16_parity}"
exec bash "$HERE/zero_shot_vitb16.sh"
