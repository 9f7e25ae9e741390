#!/usr/bin/env bash
# SFT warm start of Qwen2.5-VL with TRL's SFTTrainer (src/open_r1/sft.py), torchrun + DeepSpeed ZeRO-3.
# The native path: no second framework; run_sft_llamafactory.sh does the same step with LLaMA-Factory.
#
#   bash run_scripts/run_sft.sh                                    # 8 GPUs: Qwen2.5-VL-3B on $DATA_PATHS
#   bash run_scripts/run_sft.sh --use_peft true --lora_r 64        # LoRA (merged into the saved model)
#   bash run_scripts/run_sft.sh --targets answer --num_train_epochs 2   # extra flags go to sft.py
#
# The output folder holds model + processor: `MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh` starts GRPO
# from it. With no GPU and no MODEL given, it runs the embedded default on the CPU: the tiny Qwen2.5-VL
# (built if missing), the shipped demo data and data_config/sft_demo.yaml, 2 processes under ZeRO-3.
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
  CONFIG="${CONFIG:-$REPO_HOME/data_config/sft_demo.yaml}"
  DATA_PATHS="${DATA_PATHS:-$REPO_HOME/data/demo/train.jsonl}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:-$REPO_HOME/data/demo/images}"
  DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3_cpu.json}"
  NPROC_PER_NODE="${NPROC_PER_NODE:-2}"
  RUN_NAME="${RUN_NAME:-demo-sft}"
  EXTRA=(--use_cpu true --bf16 false)
else
  MODEL="${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}"
  CONFIG="${CONFIG:-$REPO_HOME/data_config/sft_3b.yaml}"
  DATA_PATHS="${DATA_PATHS:?set DATA_PATHS=path/to/train.jsonl (several separated by :)}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:?set IMAGE_FOLDERS=path/to/images (one per jsonl, separated by :)}"
  DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3.json}"
  NPROC_PER_NODE="${NPROC_PER_NODE:-$(gpu_count)}"
  RUN_NAME="${RUN_NAME:-geo-r-$(basename "$MODEL")-sft}"
  EXTRA=()
fi
OUTPUT_DIR="${OUTPUT_DIR:-$REPO_HOME/output/$RUN_NAME}"
mkdir -p "$OUTPUT_DIR"

echo "[geo-r] model=$MODEL nodes=${NNODES:-1} procs/node=$NPROC_PER_NODE output=$OUTPUT_DIR"
torchrun \
  --nproc_per_node="$NPROC_PER_NODE" \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${MASTER_PORT:-$(free_port)}" \
  src/open_r1/sft.py \
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

echo "[geo-r] done: model and processor in $OUTPUT_DIR, log in $OUTPUT_DIR/train.log"
echo "[geo-r] next: MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh"
