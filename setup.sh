#!/usr/bin/env bash
# One-command install of geo-r into ./.venv (idempotent: a second run only checks and returns).
#
#   bash setup.sh          # CPU or GPU machine; GPU extras (vLLM, Liger) are added when a GPU is present
#   bash setup.sh --gpu    # force the GPU extras
#   bash setup.sh --cpu    # never install the GPU extras
#   bash setup.sh --sft    # also make .venv-sft with LLaMA-Factory for the SFT warm start
#   bash setup.sh --dev    # also the test and lint tools (requirements-dev.txt: pytest, ruff, pillow-heif, the app,
#                          # playwright) and Chromium for the app's browser test (apt, as root)
#   bash setup.sh --app    # also the web page, python -m open_r1.app (requirements-app.txt: gradio)
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_HOME"

GPU=auto; SFT=0; DEV=0; APP=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --cpu) GPU=0 ;;
    --sft) SFT=1 ;;
    --dev) DEV=1 ;;
    --app) APP=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

source "$REPO_HOME/run_scripts/disk_space.sh"

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || { echo "setup.sh: Python >= 3.10 is needed ($("$PY" --version 2>&1) found)" >&2; exit 1; }
if [[ "$GPU" == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPU=1; else GPU=0; fi
fi

# DeepSpeed: no op compilation at install time; JIT builds land in the repo's ignored cache.
export DS_BUILD_OPS=0 DS_SKIP_CUDA_CHECK=1
export TORCH_EXTENSIONS_DIR="$REPO_HOME/.cache/torch_extensions"
mkdir -p "$REPO_HOME/.cache"

VPY="$REPO_HOME/.venv/bin/python"
stamp_files=(requirements.txt pyproject.toml)
[[ "$GPU" == 1 ]] && stamp_files+=(requirements-gpu.txt)
[[ "$DEV" == 1 ]] && stamp_files+=(requirements-dev.txt)
[[ "$APP" == 1 ]] && stamp_files+=(requirements-app.txt)
stamp="$(cat "${stamp_files[@]}" | sha256sum | cut -d' ' -f1)-gpu$GPU-dev$DEV-app$APP"
if [[ -x "$VPY" && -f .venv/.geo-r-installed && "$(cat .venv/.geo-r-installed)" == "$stamp" ]]; then
  echo "[setup] .venv is up to date with requirements (gpu extras: $GPU); nothing to install"
else
  # A new .venv: 6.5 GB measured for the CPU set with --dev (torch's CUDA build is most of it); the GPU set's 10 GiB
  # is an estimate. Updating an existing one replaces a few packages.
  if [[ -x "$VPY" ]]; then need_gib=2; elif [[ "$GPU" == 1 ]]; then need_gib=10; else need_gib=7; fi
  require_free_space "$REPO_HOME" "$need_gib" "setup.sh (.venv)" || exit 1
  if [[ ! -x "$VPY" ]]; then
    echo "[setup] creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
  fi
  echo "[setup] installing requirements into .venv (gpu extras: $GPU)"
  if [[ "$GPU" == 1 ]]; then
    "$VPY" -m pip install -q -r <(grep -vE '^(torch|torchvision)==' requirements.txt) -r requirements-gpu.txt
  else
    "$VPY" -m pip install -q -r requirements.txt
  fi
  if [[ "$GPU" == 1 ]]; then
    # flash-attn from a prebuilt wheel only: building it compiles CUDA kernels for an hour. Without it the recipes
    # run on sdpa; `python -m open_r1.plan --config RECIPE --attn_implementation flash_attention_2` shows the difference.
    "$VPY" -m pip install -q --only-binary=:all: flash-attn -c requirements-gpu.txt >/dev/null 2>&1 \
      || echo "[setup] flash-attn: no prebuilt wheel for this torch / CUDA / Python; the recipes use sdpa attention"
  fi
  if [[ "$DEV" == 1 ]]; then
    "$VPY" -m pip install -q -r requirements-dev.txt
  fi
  if [[ "$APP" == 1 ]]; then
    "$VPY" -m pip install -q -r requirements-app.txt
  fi
  "$VPY" -m pip install -q --no-deps -e .
  echo "$stamp" > .venv/.geo-r-installed
fi

if [[ "$DEV" == 1 ]]; then
  # The app's browser test drives a system Chromium (playwright's own browser download needs its CDN).
  browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
  if [[ -z "$browser" ]] && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    echo "[setup] installing Chromium (apt-get) for the app's browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
      >/dev/null 2>&1 || echo "[setup] apt-get could not install chromium"
    browser="$(command -v chromium || true)"
  fi
  if [[ -n "$browser" ]]; then
    echo "[setup] browser for the app's test: $browser"
  else
    echo "[setup] no Chromium (apt-get install chromium as root, or your package manager's): tests/test_app_browser.py will skip"
  fi
fi

if [[ "$SFT" == 1 ]]; then
  bash "$REPO_HOME/run_scripts/setup_sft_env.sh"
fi

"$VPY" - <<'PY'
import importlib.metadata as md
names = ["torch", "torchvision", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed"]
print("[setup] installed: " + ", ".join(f"{n} {md.version(n)}" for n in names))
for extra in ("vllm", "liger-kernel", "bitsandbytes", "flash-attn"):
    try:
        print(f"[setup] {extra} {md.version(extra)}")
    except md.PackageNotFoundError:
        pass
PY
echo "[setup] done. Activate with: source .venv/bin/activate"
