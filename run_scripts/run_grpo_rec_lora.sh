#!/usr/bin/env bash
# GRPO with LoRA adapters under DeepSpeed ZeRO-2: fits Qwen2.5-VL-7B on fewer or smaller GPUs.
# Same environment variables as run_grpo_rec.sh; LORA_R / LORA_ALPHA set the adapter size.
#   DATA_PATHS=train.jsonl IMAGE_FOLDERS=images/ bash run_scripts/run_grpo_rec_lora.sh
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero2.json}"
export RUN_NAME="${RUN_NAME:-geo-r-lora-grpo}"
exec bash "$REPO_HOME/run_scripts/run_grpo_rec.sh" \
  --use_peft true \
  --lora_r "${LORA_R:-64}" \
  --lora_alpha "${LORA_ALPHA:-128}" \
  --lora_dropout 0.05 \
  --lora_target_modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj \
  --learning_rate "${LEARNING_RATE:-1e-5}" \
  "$@"
