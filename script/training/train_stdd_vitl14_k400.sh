#!/usr/bin/env bash
# The ViT-L/14 variant of the paper recipe: the same command as train_stdd_vitb16_k400.sh with the L/14
# config (temporal scales [1,2] as a list, which the original L/14 yaml got wrong; activation
# checkpointing on), ViT-L/14 text features and its own output folder. All variables of that script apply.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ROOT:-$(cd "$HERE/../.." && pwd)}"
export ROOT
export CFG="${CFG:-$ROOT/configs/Kinetics/TemporalCLIP_vitl14_8x16_STAdapter.yaml}"
export TEXT_FEATS="${TEXT_FEATS:-$ROOT/text_feats/classes_text_feats_k400_tpl8_xmix_ViT-L_14.pt}"
export OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/output/STDD_ch32_ts1+2/vitl14_8x16}"
exec bash "$HERE/train_stdd_vitb16_k400.sh"
