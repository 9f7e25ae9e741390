#!/usr/bin/env bash
# SFT warm start of Qwen2.5-VL with LLaMA-Factory (`llamafactory-cli train`), then GRPO from its output.
#
#   bash run_scripts/run_sft_llamafactory.sh                   # 8 GPUs: Qwen2.5-VL-3B, full SFT, ZeRO-3
#   FINETUNING=lora bash run_scripts/run_sft_llamafactory.sh   # LoRA, merged into $OUTPUT_DIR/merged afterwards
#   bash run_scripts/run_sft_llamafactory.sh learning_rate=5e-6 num_train_epochs=2   # key=value overrides
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_scripts/run_sft_llamafactory.sh   # on each node, its rank
#
# Two steps: the jsonl files are exported with .venv (`python -m open_r1.data.to_llamafactory`: the same prompts
# GRPO uses, Chain-of-Region targets) into $DATASET_DIR, then LLaMA-Factory trains from .venv-sft (its own
# environment: `bash setup.sh --sft`). The output folder holds model + processor; hand it to GRPO with
# `MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh`.
#
# The settings come from common.sh's resolve_run, like the other launchers: with no GPU it runs on the CPU (one
# process, local_scripts/llamafactory/tiny_cpu_sft.yaml, the demo data unless DATA_PATHS is set), and with no
# MODEL either on the tiny Qwen2.5-VL (built if missing). On GPUs it runs under torchrun with resolve_run's
# node and port settings (the same port rule as GRPO for several nodes). On several nodes, node 0 alone exports
# the data and merges a LoRA adapter, into folders every node reads ($DATASET_DIR and $OUTPUT_DIR must be on a
# shared file system); the other nodes start training when node 0 joins the rendezvous, after its export.
# Every setting is an environment variable:
#   MODEL, DATA_PATHS (a.jsonl:b.jsonl), IMAGE_FOLDERS (imgs_a/:imgs_b/), TARGETS (chain_of_region | answer),
#   FINETUNING (full | lora), CONFIG (LLaMA-Factory YAML), DS_CONFIG (only when set: replaces the YAML's),
#   DATASET_DIR, RUN_NAME, OUTPUT_DIR, SFT_VENV, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"

SFT_VENV="${SFT_VENV:-$REPO_HOME/.venv-sft}"
LLAMAFACTORY="$SFT_VENV/bin/llamafactory-cli"
[[ -x "$LLAMAFACTORY" ]] || { echo "[geo-r] $LLAMAFACTORY not found: install LLaMA-Factory's environment with 'bash setup.sh --sft'" >&2; exit 1; }
FINETUNING="${FINETUNING:-full}"
[[ "$FINETUNING" == full || "$FINETUNING" == lora ]] || { echo "[geo-r] FINETUNING must be full or lora, not '$FINETUNING'" >&2; exit 2; }
USER_DS_CONFIG="${DS_CONFIG:-}"  # the YAMLs name their DeepSpeed config; only an explicit DS_CONFIG replaces it

name="sft-llamafactory"; [[ "$FINETUNING" == lora ]] && name="sft-llamafactory-lora"
resolve_run "$name" "$REPO_HOME/local_scripts/llamafactory/tiny_cpu_sft.yaml" \
  "$REPO_HOME/local_scripts/llamafactory/qwen2_5_vl_${FINETUNING}_sft.yaml" 1
if [[ "$ON_GPU" == 1 ]]; then
  EXTRA=()
  # what llamafactory-cli sets for its own torchrun launches
  export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
  export TORCH_NCCL_AVOID_RECORD_STREAMS="${TORCH_NCCL_AVOID_RECORD_STREAMS:-1}"
else
  EXTRA=(finetuning_type="$FINETUNING")  # tiny_cpu_sft.yaml is written for full SFT
fi
DATASET_DIR="${DATASET_DIR:-$OUTPUT_DIR/data}"
NODE_RANK="${NODE_RANK:-0}"

if [[ "$NODE_RANK" == 0 ]]; then
  echo "[geo-r] exporting $DATA_PATHS to $DATASET_DIR (targets: ${TARGETS:-chain_of_region})"
  "$PYTHON" -m open_r1.data.to_llamafactory \
    --data_file_paths "$DATA_PATHS" \
    --image_folders "$IMAGE_FOLDERS" \
    --targets "${TARGETS:-chain_of_region}" \
    --export_name geo_r_sft \
    --out "$DATASET_DIR"
else
  echo "[geo-r] node $NODE_RANK: node 0 exports the data to $DATASET_DIR; training starts when it joins"
fi

# LLaMA-Factory resolves relative paths (deepspeed config, model folder) from the repository root.
args=(
  "$CONFIG"
  model_name_or_path="$MODEL"
  dataset_dir="$DATASET_DIR"
  dataset=geo_r_sft
  output_dir="$OUTPUT_DIR"
  ${USER_DS_CONFIG:+deepspeed="$USER_DS_CONFIG"}
  "${EXTRA[@]}"
  "$@"
)
echo "[geo-r] model=$MODEL config=$CONFIG nodes=${NNODES:-1} procs/node=$NPROC_PER_NODE output=$OUTPUT_DIR"
report_overrides dotlist "${args[@]}" | tee -a "$OUTPUT_DIR/train.log"
if [[ "$ON_GPU" == 1 || "$NPROC_PER_NODE" -gt 1 || "${NNODES:-1}" -gt 1 ]]; then
  # LLaMA-Factory's own entry under torchrun, as `FORCE_TORCHRUN=1 llamafactory-cli train` runs it, but with
  # resolve_run's rendezvous and with every argument passed intact
  lf_launcher="$("$SFT_VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("llamafactory").submodule_search_locations[0])')/launcher.py"
  run_torchrun "$SFT_VENV/bin/torchrun" "$lf_launcher" "${args[@]}"
else
  "$LLAMAFACTORY" train "${args[@]}" 2>&1 | tee -a "$OUTPUT_DIR/train.log"
fi

CKPT="$OUTPUT_DIR"
if [[ -f "$OUTPUT_DIR/adapter_config.json" ]]; then
  CKPT="$OUTPUT_DIR/merged"
  if [[ "$NODE_RANK" == 0 ]]; then
    echo "[geo-r] LoRA adapter in $OUTPUT_DIR: merging it into $CKPT for GRPO"
    "$LLAMAFACTORY" export \
      --model_name_or_path "$MODEL" \
      --adapter_name_or_path "$OUTPUT_DIR" \
      --template qwen2_vl \
      --finetuning_type lora \
      --export_dir "$CKPT" 2>&1 | tee -a "$OUTPUT_DIR/train.log"
  else
    echo "[geo-r] node $NODE_RANK: node 0 merges the LoRA adapter into $CKPT"
  fi
fi
echo "[geo-r] done: SFT model + processor in $CKPT, log in $OUTPUT_DIR/train.log"
echo "[geo-r] next: MODEL=$CKPT bash run_scripts/run_grpo_rec.sh"
