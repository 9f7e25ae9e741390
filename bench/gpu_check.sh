#!/usr/bin/env bash
# The prepared GPU check, to run whenever a GPU is lent (no vLLM or internet needed, 8 minutes at most on one H100):
# GRPO steps of the 3B recipe on the full-depth 3B model with random weights, timed phase by phase, with peak memory
# next to `python -m open_r1.plan`'s figure; results appended to bench/results/gpu.jsonl. Without a GPU it runs every
# part it can on the CPU (a 2-layer 3B-width model, one step), says there is no GPU and exits 0.
#
#   bash bench/gpu_check.sh                 # BUDGET_S=480 by default
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
PYTHON="${PYTHON:-$( [[ -x "$REPO_HOME/.venv/bin/python" ]] && echo "$REPO_HOME/.venv/bin/python" || command -v python3 )}"
export TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled HF_HUB_OFFLINE=1
echo "[gpu-check] $("$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"))')"
card_gib="$("$PYTHON" -c 'import torch; print(round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if torch.cuda.is_available() else 80)')"
echo "[gpu-check] the plan of the 3B recipe on one GPU of $card_gib GiB with transformers generation:"
"$PYTHON" -m open_r1.plan --config data_config/geo_r_3b.yaml --nproc 1 --gpu_gib "$card_gib" --use_vllm false --deepspeed= 2>/dev/null \
  | sed 's/^/[gpu-check]   /'
exec "$PYTHON" bench/gpu_check.py --budget_s "${BUDGET_S:-480}" "$@"
