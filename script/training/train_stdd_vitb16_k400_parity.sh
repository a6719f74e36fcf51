#!/usr/bin/env bash
# The parity recipe: train_stdd_vitb16_k400.sh with configs/Kinetics/STDD_vitb16_8x16_k400_parity.yaml (the
# original code's behaviour wherever this framework differs on purpose: the setting of the paper's table)
# and its own output folder. All variables of that script apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ROOT:-$(cd "$HERE/../.." && pwd)}"
export ROOT
export CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitb16_8x16_k400_parity.yaml}"
export OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/STDD_ch32_ts1+2/vitb16_8x16_parity}"
exec bash "$HERE/train_stdd_vitb16_k400.sh"
