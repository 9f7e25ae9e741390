#!/usr/bin/env bash
# Make .venv-sft: LLaMA-Factory in its own environment (its pins clash with .venv's transformers/trl).
# Idempotent: a second run with unchanged requirements-sft.txt only checks and returns.
#
#   bash run_scripts/setup_sft_env.sh            # or: bash setup.sh --sft
#   SFT_VENV=/path/to/venv bash run_scripts/setup_sft_env.sh
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"

source "$REPO_HOME/run_scripts/disk_space.sh"
SFT_VENV="${SFT_VENV:-$REPO_HOME/.venv-sft}"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || { echo "setup_sft_env.sh: Python >= 3.10 is needed ($("$PY" --version 2>&1) found)" >&2; exit 1; }
export DS_BUILD_OPS=0 DS_SKIP_CUDA_CHECK=1

stamp="$(sha256sum requirements-sft.txt | cut -d' ' -f1)"
if [[ -x "$SFT_VENV/bin/llamafactory-cli" && -f "$SFT_VENV/.geo-r-sft-installed" \
      && "$(cat "$SFT_VENV/.geo-r-sft-installed")" == "$stamp" ]]; then
  echo "[setup-sft] $SFT_VENV is up to date with requirements-sft.txt; nothing to install"
else
  start=$SECONDS
  mkdir -p "$(dirname "$SFT_VENV")"
  require_free_space "$(dirname "$SFT_VENV")" "$([[ -x "$SFT_VENV/bin/python" ]] && echo 2 || echo 7)" \
    "setup_sft_env.sh ($SFT_VENV)" || exit 1
  [[ -x "$SFT_VENV/bin/python" ]] || { echo "[setup-sft] creating $SFT_VENV with $("$PY" --version)"; "$PY" -m venv "$SFT_VENV"; }
  echo "[setup-sft] installing requirements-sft.txt into $SFT_VENV (LLaMA-Factory; a few minutes, several GB)"
  "$SFT_VENV/bin/python" -m pip install -q -r requirements-sft.txt
  "$SFT_VENV/bin/python" -m pip check
  echo "$stamp" > "$SFT_VENV/.geo-r-sft-installed"
  echo "[setup-sft] installed in $((SECONDS - start)) s"
fi

"$SFT_VENV/bin/python" - <<'PY'
import importlib.metadata as md
names = ["llamafactory", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed"]
print("[setup-sft] installed: " + ", ".join(f"{n} {md.version(n)}" for n in names))
PY
echo "[setup-sft] done. Train with: bash run_scripts/run_sft_llamafactory.sh"
