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

if ! has_gpu; then
  if [[ -z "${MODEL:-}" ]]; then
    echo "[geo-r] no GPU and no MODEL: running the embedded default (tiny Qwen2.5-VL, demo data, 2 CPU processes, ZeRO-3)"
    MODEL="${TINY_MODEL_DIR:-$REPO_HOME/.cache/tiny-qwen2.5-vl}"
    "$PYTHON" -m open_r1.tiny_model --out "$MODEL"
  else
    echo "[geo-r] no GPU: training $MODEL on the CPU (2 processes, ZeRO-3)"
  fi
  CONFIG="${CONFIG:-$REPO_HOME/data_config/demo.yaml}"
  DATA_PATHS="${DATA_PATHS:-$REPO_HOME/data/demo/train.jsonl}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:-$REPO_HOME/data/demo/images}"
  DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3_cpu.json}"
  NPROC_PER_NODE="${NPROC_PER_NODE:-2}"
  RUN_NAME="${RUN_NAME:-demo-grpo}"
  EXTRA=(--use_cpu true --bf16 false)
else
  MODEL="${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}"
  CONFIG="${CONFIG:-$REPO_HOME/data_config/geo_r_3b.yaml}"
  DATA_PATHS="${DATA_PATHS:?set DATA_PATHS=path/to/train.jsonl (several separated by :)}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:?set IMAGE_FOLDERS=path/to/images (one per jsonl, separated by :)}"
  DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3.json}"
  NPROC_PER_NODE="${NPROC_PER_NODE:-$(gpu_count)}"
  RUN_NAME="${RUN_NAME:-geo-r-$(basename "$MODEL")-grpo}"
  EXTRA=($(vllm_flags))
fi
OUTPUT_DIR="${OUTPUT_DIR:-$REPO_HOME/output/$RUN_NAME}"
# every node must agree on the port: a fixed default for multi-node runs, a free one for a single node
if [[ "${NNODES:-1}" -gt 1 ]]; then MASTER_PORT="${MASTER_PORT:-29500}"; else MASTER_PORT="${MASTER_PORT:-$(free_port)}"; fi
mkdir -p "$OUTPUT_DIR"

echo "[geo-r] model=$MODEL nodes=${NNODES:-1} procs/node=$NPROC_PER_NODE output=$OUTPUT_DIR"
torchrun \
  --nproc_per_node="$NPROC_PER_NODE" \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="$MASTER_PORT" \
  src/open_r1/grpo_jsonl.py \
  --config "$CONFIG" \
  --model_name_or_path "$MODEL" \
  --data_file_paths "$DATA_PATHS" \
  --image_folders "$IMAGE_FOLDERS" \
  --deepspeed "$DS_CONFIG" \
  --output_dir "$OUTPUT_DIR" \
  --run_name "$RUN_NAME" \
  ${REPORT_TO:+--report_to "$REPORT_TO"} \
  "${EXTRA[@]}" \
  "$@" 2>&1 | tee "$OUTPUT_DIR/train.log"

echo "[geo-r] done: checkpoints and model in $OUTPUT_DIR, log in $OUTPUT_DIR/train.log"
echo "[geo-r] curves: tensorboard --logdir $OUTPUT_DIR/runs  (or your wandb project)"
