#!/usr/bin/env bash
# SFT warm start of Qwen2.5-VL with LLaMA-Factory (`llamafactory-cli train`), then GRPO from its output.
#
#   bash run_scripts/run_sft_llamafactory.sh                   # 8 GPUs: Qwen2.5-VL-3B, full SFT, ZeRO-3
#   FINETUNING=lora bash run_scripts/run_sft_llamafactory.sh   # LoRA, merged into $OUTPUT_DIR/merged afterwards
#   bash run_scripts/run_sft_llamafactory.sh learning_rate=5e-6 num_train_epochs=2   # key=value overrides
#
# Two steps: the jsonl files are exported with .venv (`python -m open_r1.data.to_llamafactory`: the same prompts
# GRPO uses, Chain-of-Region targets) into $DATASET_DIR, then LLaMA-Factory trains from .venv-sft (its own
# environment: `bash setup.sh --sft`). The output folder holds model + processor; hand it to GRPO with
# `MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh`.
#
# With no GPU and no MODEL given, it runs the embedded default on the CPU: the tiny Qwen2.5-VL (built if
# missing), the shipped demo data, local_scripts/llamafactory/tiny_cpu_sft.yaml, one process.
# Every setting is an environment variable:
#   MODEL, DATA_PATHS (a.jsonl:b.jsonl), IMAGE_FOLDERS (imgs_a/:imgs_b/), TARGETS (chain_of_region | answer),
#   FINETUNING (full | lora), CONFIG (LLaMA-Factory YAML), DATASET_DIR, RUN_NAME, OUTPUT_DIR, SFT_VENV,
#   NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"

SFT_VENV="${SFT_VENV:-$REPO_HOME/.venv-sft}"
LLAMAFACTORY="$SFT_VENV/bin/llamafactory-cli"
[[ -x "$LLAMAFACTORY" ]] || { echo "[geo-r] $LLAMAFACTORY not found: install LLaMA-Factory's environment with 'bash setup.sh --sft'" >&2; exit 1; }
FINETUNING="${FINETUNING:-full}"
[[ "$FINETUNING" == full || "$FINETUNING" == lora ]] || { echo "[geo-r] FINETUNING must be full or lora, not '$FINETUNING'" >&2; exit 2; }

if [[ -z "${MODEL:-}" ]] && ! has_gpu; then
  echo "[geo-r] no GPU and no MODEL: running the embedded default (tiny Qwen2.5-VL, demo data, 1 CPU process)"
  MODEL="${TINY_MODEL_DIR:-$REPO_HOME/.cache/tiny-qwen2.5-vl}"
  "$PYTHON" -m open_r1.tiny_model --out "$MODEL"
  CONFIG="${CONFIG:-$REPO_HOME/local_scripts/llamafactory/tiny_cpu_sft.yaml}"
  DATA_PATHS="${DATA_PATHS:-$REPO_HOME/data/demo/train.jsonl}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:-$REPO_HOME/data/demo/images}"
  RUN_NAME="${RUN_NAME:-demo-sft-llamafactory}"
  EXTRA=(finetuning_type="$FINETUNING")
else
  MODEL="${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}"
  CONFIG="${CONFIG:-$REPO_HOME/local_scripts/llamafactory/qwen2_5_vl_${FINETUNING}_sft.yaml}"
  DATA_PATHS="${DATA_PATHS:?set DATA_PATHS=path/to/train.jsonl (several separated by :)}"
  IMAGE_FOLDERS="${IMAGE_FOLDERS:?set IMAGE_FOLDERS=path/to/images (one per jsonl, separated by :)}"
  RUN_NAME="${RUN_NAME:-geo-r-$(basename "$MODEL")-sft-$FINETUNING}"
  # LLaMA-Factory runs DeepSpeed only under torchrun; it reads NPROC_PER_NODE, NNODES, NODE_RANK,
  # MASTER_ADDR and MASTER_PORT itself.
  export FORCE_TORCHRUN=1 NPROC_PER_NODE="${NPROC_PER_NODE:-$(gpu_count)}"
  EXTRA=()
fi
OUTPUT_DIR="${OUTPUT_DIR:-$REPO_HOME/output/$RUN_NAME}"
DATASET_DIR="${DATASET_DIR:-$OUTPUT_DIR/data}"
mkdir -p "$OUTPUT_DIR"

echo "[geo-r] exporting $DATA_PATHS to $DATASET_DIR (targets: ${TARGETS:-chain_of_region})"
"$PYTHON" -m open_r1.data.to_llamafactory \
  --data_file_paths "$DATA_PATHS" \
  --image_folders "$IMAGE_FOLDERS" \
  --targets "${TARGETS:-chain_of_region}" \
  --dataset_name geo_r_sft \
  --out "$DATASET_DIR"

echo "[geo-r] model=$MODEL config=$CONFIG output=$OUTPUT_DIR"
# LLaMA-Factory resolves relative paths (deepspeed config, model folder) from the repository root.
"$LLAMAFACTORY" train "$CONFIG" \
  model_name_or_path="$MODEL" \
  dataset_dir="$DATASET_DIR" \
  dataset=geo_r_sft \
  output_dir="$OUTPUT_DIR" \
  "${EXTRA[@]}" \
  "$@" 2>&1 | tee "$OUTPUT_DIR/train.log"

CKPT="$OUTPUT_DIR"
if [[ -f "$OUTPUT_DIR/adapter_config.json" ]]; then
  echo "[geo-r] LoRA adapter in $OUTPUT_DIR: merging it into $OUTPUT_DIR/merged for GRPO"
  "$LLAMAFACTORY" export \
    --model_name_or_path "$MODEL" \
    --adapter_name_or_path "$OUTPUT_DIR" \
    --template qwen2_vl \
    --finetuning_type lora \
    --trust_remote_code true \
    --export_dir "$OUTPUT_DIR/merged" 2>&1 | tee -a "$OUTPUT_DIR/train.log"
  CKPT="$OUTPUT_DIR/merged"
fi
echo "[geo-r] done: SFT model + processor in $CKPT, log in $OUTPUT_DIR/train.log"
echo "[geo-r] next: MODEL=$CKPT bash run_scripts/run_grpo_rec.sh"
