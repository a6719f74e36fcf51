#!/usr/bin/env bash
# STDD with ViT-L/14: train_stdd_vitb16_k400.sh with configs/Kinetics/STDD_vitl14_8x16_k400.yaml, the
# ViT-L/14 text features and its own output folder. All variables of that script apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ROOT:-$(cd "$HERE/../.." && pwd)}"
export ROOT
export CFG="${CFG:-$ROOT/configs/Kinetics/STDD_vitl14_8x16_k400.yaml}"
export TEXT_FEATS="${TEXT_FEATS:-$ROOT/text_feats/classes_text_feats_k400_tpl8_xmix_ViT-L_14.pt}"
export OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/STDD_ch32_ts1+2/vitl14_8x16}"
exec bash "$HERE/train_stdd_vitb16_k400.sh"
