# Shared helpers for the launchers (sourced, not run).
PYTHON="${PYTHON:-$( [[ -x "$REPO_HOME/.venv/bin/python" ]] && echo "$REPO_HOME/.venv/bin/python" || command -v python3 )}"
export PATH="$(dirname "$PYTHON"):$PATH"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$REPO_HOME/.cache/torch_extensions}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

has_gpu() { "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
gpu_count() { "$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))' 2>/dev/null || echo 1; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# TRL's vLLM generation (colocated with training) when vLLM is installed; transformers generate otherwise.
vllm_flags() {
  if "$PYTHON" -c 'import vllm' 2>/dev/null; then echo "--use_vllm true --vllm_mode colocate";
  else echo "[geo-r] vLLM not installed: generating with transformers (slower; bash setup.sh --gpu installs vLLM)" >&2; echo "--use_vllm false"; fi
}
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"  # torch 2.14 deprecations raised inside DeepSpeed, once per call

# resolve_run NAME CPU_CONFIG GPU_CONFIG: the settings of a run from the environment. With no GPU it runs on
# the CPU (2 processes, ZeRO-3), and with no MODEL either on the embedded default (tiny model, demo data).
# Sets MODEL CONFIG DATA_PATHS IMAGE_FOLDERS DS_CONFIG NPROC_PER_NODE RUN_NAME OUTPUT_DIR MASTER_PORT ON_GPU EXTRA.
resolve_run() {
  local name="$1" cpu_config="$2" gpu_config="$3"
  if ! has_gpu; then
    ON_GPU=0
    if [[ -z "${MODEL:-}" ]]; then
      echo "[geo-r] no GPU and no MODEL: running the embedded default (tiny Qwen2.5-VL, demo data, 2 CPU processes, ZeRO-3)"
      MODEL="${TINY_MODEL_DIR:-$REPO_HOME/.cache/tiny-qwen2.5-vl}"
      "$PYTHON" -m open_r1.tiny_model --out "$MODEL"
    else
      echo "[geo-r] no GPU: training $MODEL on the CPU (2 processes, ZeRO-3)"
    fi
    CONFIG="${CONFIG:-$cpu_config}"
    DATA_PATHS="${DATA_PATHS:-$REPO_HOME/data/demo/train.jsonl}"
    IMAGE_FOLDERS="${IMAGE_FOLDERS:-$REPO_HOME/data/demo/images}"
    DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3_cpu.json}"
    NPROC_PER_NODE="${NPROC_PER_NODE:-2}"
    RUN_NAME="${RUN_NAME:-demo-$name}"
    EXTRA=(--use_cpu true --bf16 false)
  else
    ON_GPU=1
    MODEL="${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}"
    CONFIG="${CONFIG:-$gpu_config}"
    DATA_PATHS="${DATA_PATHS:?set DATA_PATHS=path/to/train.jsonl (several separated by :)}"
    IMAGE_FOLDERS="${IMAGE_FOLDERS:?set IMAGE_FOLDERS=path/to/images (one per jsonl, separated by :)}"
    DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3.json}"
    NPROC_PER_NODE="${NPROC_PER_NODE:-$(gpu_count)}"
    RUN_NAME="${RUN_NAME:-geo-r-$(basename "$MODEL")-$name}"
    EXTRA=()
  fi
  OUTPUT_DIR="${OUTPUT_DIR:-$REPO_HOME/output/$RUN_NAME}"
  # every node must agree on the port: a fixed default for multi-node runs, a free one for a single node
  if [[ "${NNODES:-1}" -gt 1 ]]; then MASTER_PORT="${MASTER_PORT:-29500}"; else MASTER_PORT="${MASTER_PORT:-$(free_port)}"; fi
  mkdir -p "$OUTPUT_DIR"
}

# launch ENTRY [flags...]: torchrun the entry script with the settings resolve_run chose; output to train.log.
launch() {
  local entry="$1"; shift
  echo "[geo-r] model=$MODEL nodes=${NNODES:-1} procs/node=$NPROC_PER_NODE output=$OUTPUT_DIR"
  torchrun \
    --nproc_per_node="$NPROC_PER_NODE" \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="$MASTER_PORT" \
    "$entry" \
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
}
