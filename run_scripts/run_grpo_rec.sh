#!/usr/bin/env bash
# GRPO training of Qwen2.5-VL with torchrun + DeepSpeed ZeRO-3.
#
#   bash run_scripts/run_grpo_rec.sh                      # 8 GPUs: Qwen2.5-VL-3B on $DATA_PATHS / $IMAGE_FOLDERS
#   MODEL=Qwen/Qwen2.5-VL-7B-Instruct NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_rec.sh
#   bash run_scripts/run_grpo_rec.sh --max_steps 500 --learning_rate 2e-6   # extra flags go to grpo_jsonl.py
#
# With no GPU, it runs on the CPU with 2 processes under ZeRO-3 (data_config/demo.yaml); with no MODEL either,
# that is the embedded default: it builds the tiny Qwen2.5-VL if missing and trains on the shipped demo data.
# Every setting is an environment variable:
#   MODEL, DATA_PATHS (a.jsonl:b.jsonl), IMAGE_FOLDERS (imgs_a/:imgs_b/), RUN_NAME, OUTPUT_DIR, CONFIG (YAML),
#   DS_CONFIG, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, REPORT_TO
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"

resolve_run grpo "$REPO_HOME/data_config/demo.yaml" "$REPO_HOME/data_config/geo_r_3b.yaml"
if [[ "$ON_GPU" == 1 ]]; then EXTRA=($(vllm_flags)); fi
launch src/open_r1/grpo_jsonl.py "$@"

echo "[geo-r] done: checkpoints and model in $OUTPUT_DIR, log in $OUTPUT_DIR/train.log"
echo "[geo-r] curves: tensorboard --logdir $OUTPUT_DIR/runs  (or your wandb project)"
