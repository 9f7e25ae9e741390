# Shared helpers for the launchers (sourced, not run).
PYTHON="${PYTHON:-$( [[ -x "$REPO_HOME/.venv/bin/python" ]] && echo "$REPO_HOME/.venv/bin/python" || command -v python3 )}"
export PATH="$(dirname "$PYTHON"):$PATH"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$REPO_HOME/.cache/torch_extensions}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

# has_gpu: whether torch sees a CUDA (or ROCm) GPU. Answered without starting Python (torch's import costs
# seconds) when CUDA_VISIBLE_DEVICES hides every device or the machine has neither an NVIDIA nor an AMD driver.
has_gpu() {
  if [[ "${CUDA_VISIBLE_DEVICES-unset}" == "" || "${CUDA_VISIBLE_DEVICES:-}" == "-1" ]]; then return 1; fi
  if [[ ! -e /proc/driver/nvidia/version && ! -e /dev/kfd ]] && ! command -v nvidia-smi >/dev/null 2>&1; then
    return 1
  fi
  "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
}
gpu_count() { "$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))' 2>/dev/null || echo 1; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# TRL's vLLM generation (colocated with training) when vLLM is installed; transformers generate otherwise.
vllm_flags() {
  if "$PYTHON" -c 'import vllm' 2>/dev/null; then echo "--use_vllm true --vllm_mode colocate";
  else echo "[geo-r] vLLM not installed: generating with transformers (slower; bash setup.sh --gpu installs vLLM)" >&2; echo "--use_vllm false"; fi
}

# ZeRO calls two collectives that torch 2.14 deprecates, and their FutureWarning repeats at every call: those two
# messages alone are silenced; every other warning still shows.
DS_COLLECTIVE_WARNINGS='ignore:`torch.distributed.all_gather_into_tensor` is deprecated:FutureWarning'
DS_COLLECTIVE_WARNINGS+=',ignore:`torch.distributed.reduce_scatter_tensor` is deprecated:FutureWarning'
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}$DS_COLLECTIVE_WARNINGS"

# resolve_run NAME CPU_CONFIG GPU_CONFIG [CPU_PROCS] [DEMO_SPLIT]: the settings of a run from the environment. With
# no GPU it runs on the CPU (CPU_PROCS processes, default 2), and with no MODEL either on the embedded default (tiny
# model, demo data: DATA_PATHS defaults to data/demo/DEMO_SPLIT.jsonl, default train). Sets MODEL CONFIG DATA_PATHS
# IMAGE_FOLDERS DS_CONFIG NPROC_PER_NODE RUN_NAME OUTPUT_DIR MASTER_PORT ON_GPU EMBEDDED EXTRA.
resolve_run() {
  local name="$1" cpu_config="$2" gpu_config="$3" cpu_procs="${4:-2}" demo_split="${5:-train}"
  EMBEDDED=0
  if ! has_gpu; then
    ON_GPU=0
    NPROC_PER_NODE="${NPROC_PER_NODE:-$cpu_procs}"
    if [[ -z "${MODEL:-}" ]]; then
      EMBEDDED=1
      echo "[geo-r] no GPU and no MODEL: running the embedded default (tiny Qwen2.5-VL, demo data, $NPROC_PER_NODE CPU process(es))"
      MODEL="${TINY_MODEL_DIR:-$REPO_HOME/.cache/tiny-qwen2.5-vl}"
      "$PYTHON" -m open_r1.tiny_model --out "$MODEL"
    else
      echo "[geo-r] no GPU: training $MODEL on the CPU ($NPROC_PER_NODE process(es))"
    fi
    CONFIG="${CONFIG:-$cpu_config}"
    DATA_PATHS="${DATA_PATHS:-$REPO_HOME/data/demo/$demo_split.jsonl}"
    IMAGE_FOLDERS="${IMAGE_FOLDERS:-$REPO_HOME/data/demo/images}"
    DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero3_cpu.json}"
    RUN_NAME="${RUN_NAME:-demo-$name}"
    EXTRA=(--use_cpu true --bf16 false)
    # glibc keeps freed tensor memory in per-thread arenas, so a rank's resident memory ratchets up step after step.
    # (A fixed MALLOC_MMAP_THRESHOLD_ hands large frees back too, but costs small models time: set it for big ones.)
    export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
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
  # every node must agree on the rendezvous: a fixed default port and a named first node for multi-node runs,
  # a free port for a single node
  if [[ "${NNODES:-1}" -gt 1 ]]; then
    MASTER_ADDR="${MASTER_ADDR:?NNODES=$NNODES: set MASTER_ADDR (the address of the first node) on every node}"
    MASTER_PORT="${MASTER_PORT:-29500}"
  else
    MASTER_PORT="${MASTER_PORT:-$(free_port)}"
  fi
  mkdir -p "$OUTPUT_DIR"
}

# report_overrides STYLE CONFIG ARGS...: one line for each key of the YAML recipe CONFIG that ARGS set to another
# value, so a launcher never overrides a recipe silently. STYLE: "flags" (--key value ..., --key=value) or
# "dotlist" (LLaMA-Factory's key=value).
report_overrides() {
  "$PYTHON" - "$@" <<'PY' || echo "[geo-r] could not compare the flags with the recipe $2" >&2
import os
import sys

import yaml

style, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path, encoding="utf-8") as handle:
    recipe = yaml.safe_load(handle) or {}
given, key = {}, None
for arg in args:
    if style == "dotlist":
        name, sep, value = arg.partition("=")
        if sep:
            given[name] = [value]
    elif arg.startswith("--"):
        key, sep, value = arg[2:].partition("=")
        given[key] = [value] if sep else []
        key = None if sep else key
    elif key is not None:
        given[key].append(arg)


def text(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(text(v) for v in value)
    return "null" if value is None else str(value)


def same(old, new):
    if old == new or (old.lower() in ("true", "false") and old.lower() == new.lower()):
        return True
    try:
        return float(old) == float(new)
    except ValueError:
        return os.path.exists(old) and os.path.exists(new) and os.path.samefile(old, new)


for name, values in given.items():
    if name in recipe:
        old, new = text(recipe[name]), " ".join(values) if values else "true"
        if not same(old, new):
            flag = f"--{name}" if style == "flags" else f"{name}="
            print(f"[geo-r] {flag} overrides {name}: {old} -> {new}  ({os.path.basename(path)})")
PY
}

# stage_output LOG STAGE: a long stage's whole output into LOG, and on the terminal its [geo-r] lines (progress with an
# ETA) and error lines, plus a "still working" line whenever it has been quiet for 12 s (open_r1.console; --outer
# waits longer than a torchrun stage's own 10 s, so a stage inside it says so once)
stage_output() { tee "$1" | "$PYTHON" -m open_r1.console --outer "$2"; }

# first_error FILE [BYTES]: the first `error: ...` line an entry point printed (open_r1.cli's one line
# for a bad input, or argparse's `PROG: error: ...`) in FILE after its first BYTES bytes; nothing when there is none.
first_error() {
  tail -c +"$(( ${2:-0} + 1 ))" "$1" 2>/dev/null | grep -m1 -E '^([A-Za-z0-9_.-]+: )?error: ' || true
}

# run_torchrun TORCHRUN SCRIPT [ARGS...]: this node's torchrun with the node and port settings of resolve_run. The
# output is appended to $OUTPUT_DIR/train.log, so a resumed run keeps the log of the run it continues. When torchrun
# fails, the first `error:` line of this launch is repeated after its report, so it is the last line on screen, and
# the status is 2 (a bad input), else torchrun's.
run_torchrun() {
  local torchrun="$1"; shift
  local log="$OUTPUT_DIR/train.log" start status=0
  echo "[geo-r] $(date '+%F %T') node ${NODE_RANK:-0} of ${NNODES:-1}: $NPROC_PER_NODE process(es), rendezvous ${MASTER_ADDR:-127.0.0.1}:$MASTER_PORT" \
    | tee -a "$log"
  start="$(wc -c < "$log")"
  "$torchrun" \
    --nproc_per_node="$NPROC_PER_NODE" \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="$MASTER_PORT" \
    "$@" 2>&1 | tee -a "$log" | "$PYTHON" -m open_r1.console --all "$(basename "$1" .py)" \
    || status=$?  # the launchers run with pipefail: torchrun's status; a quiet spell gets a "still working" line
  if [[ "$status" != 0 ]]; then
    local line; line="$(first_error "$log" "$start")"
    if [[ -n "$line" ]]; then echo "$line" >&2; status=2; fi
  fi
  return "$status"
}

# launch ENTRY [flags...]: torchrun the entry script with the settings resolve_run chose, after a line for each
# recipe key these flags override; output appended to train.log.
launch() {
  local entry="$1"; shift
  local flags=(
    --model_name_or_path "$MODEL"
    --data_file_paths "$DATA_PATHS"
    --image_folders "$IMAGE_FOLDERS"
    --deepspeed "$DS_CONFIG"
    --output_dir "$OUTPUT_DIR"
    --run_name "$RUN_NAME"
    ${REPORT_TO:+--report_to "$REPORT_TO"}
    "${EXTRA[@]}"
    "$@"
  )
  echo "[geo-r] model=$MODEL nodes=${NNODES:-1} procs/node=$NPROC_PER_NODE output=$OUTPUT_DIR"
  report_overrides flags "$CONFIG" "${flags[@]}" | tee -a "$OUTPUT_DIR/train.log"
  run_torchrun torchrun "$entry" --config "$CONFIG" "${flags[@]}"
}
