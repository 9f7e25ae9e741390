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
