#!/usr/bin/env bash
# The whole recipe on the embedded default, on a CPU, in minutes: SFT warm start -> GRPO with the geo rewards
# -> evaluation of the base model, the SFT model and the GRPO model on the held-out demo split, then a short
# report (parse rate, median km, accuracy at 25/750 km, GeoGuessr score per stage, and the GRPO reward curve).
#
#   bash run_scripts/run_demo.sh                 # writes output/demo/{base,sft,grpo}/ and output/demo/grpo_curve.png
#   OUTPUT_ROOT=/tmp/demo SEED=7 bash run_scripts/run_demo.sh
#   SFT_STEPS=20 GRPO_STEPS=4 bash run_scripts/run_demo.sh   # a shortened run (the pipeline test uses one)
#   GRPO_FLAGS="--balance_by country --balance_alpha 0.5" bash run_scripts/run_demo.sh   # extra GRPO flags
#   SFT_MODEL=output/demo/sft bash run_scripts/run_demo.sh   # GRPO from this SFT model (no base eval, no SFT)
#
# Each stage runs the real entry scripts (open_r1.sft, open_r1.grpo_jsonl, open_r1.eval_geo) in one process:
# on a 2-core CPU, DeepSpeed ZeRO-3's partitioning costs more than it saves for a 10M-parameter model (the
# ZeRO-3 path itself is `bash run_scripts/run_grpo_rec.sh`). The recipes are data_config/sft_demo.yaml and
# data_config/demo.yaml.
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"

OUT="${OUTPUT_ROOT:-$REPO_HOME/output/demo}"
SEED="${SEED:-42}"
TINY="${TINY_MODEL_DIR:-$REPO_HOME/.cache/tiny-qwen2.5-vl}"
TEST_DATA="$REPO_HOME/data/demo/test.jsonl"
IMAGES="$REPO_HOME/data/demo/images"
EVAL_TOKENS="${EVAL_TOKENS:-160}"
SFT_STEPS="${SFT_STEPS:-}"    # empty: the recipe's max_steps
GRPO_STEPS="${GRPO_STEPS:-}"
GRPO_FLAGS="${GRPO_FLAGS:-}"  # split on spaces and added to the GRPO command line (after the recipe's settings)
SFT_MODEL="${SFT_MODEL:-}"    # empty: train the SFT model here
mkdir -p "$OUT"
start=$SECONDS

evaluate() {  # evaluate MODEL_DIR into OUT_DIR on the held-out split
  "$PYTHON" -m open_r1.eval_geo --model_name_or_path "$1" --data_file_paths "$TEST_DATA" \
    --image_folders "$IMAGES" --output_dir "$2" --max_new_tokens "$EVAL_TOKENS" --batch_size 16 \
    --overwrite --no_plots > "$2.log" 2>&1 || { tail -n 30 "$2.log"; exit 1; }
}

echo "[demo] 1/5 tiny Qwen2.5-VL"
"$PYTHON" -m open_r1.tiny_model --out "$TINY"
if [[ -z "$SFT_MODEL" ]]; then
  echo "[demo] 2/5 evaluating the base model"
  mkdir -p "$OUT/base"; evaluate "$TINY" "$OUT/base/eval"
  echo "[demo] 3/5 SFT warm start (Chain-of-Region targets)"
  "$PYTHON" -m open_r1.sft --config data_config/sft_demo.yaml --model_name_or_path "$TINY" \
    --output_dir "$OUT/sft" --report_to none --seed "$SEED" ${SFT_STEPS:+--max_steps "$SFT_STEPS" --save_steps "$SFT_STEPS"} \
    > "$OUT/sft.log" 2>&1 || { tail -n 40 "$OUT/sft.log"; exit 1; }
  evaluate "$OUT/sft" "$OUT/sft/eval"
  SFT_MODEL="$OUT/sft"
else
  echo "[demo] 2-3/5 using the SFT model $SFT_MODEL"
fi
echo "[demo] 4/5 GRPO from the SFT model (format + haversine + hierarchy + geohash rewards, KL to the SFT model)"
rm -rf "$OUT/grpo"
# shellcheck disable=SC2086  # GRPO_FLAGS is a list of flags, split on purpose
"$PYTHON" -m open_r1.grpo_jsonl --config data_config/demo.yaml --model_name_or_path "$SFT_MODEL" \
  --output_dir "$OUT/grpo" --report_to none --use_cpu true --seed "$SEED" \
  ${GRPO_STEPS:+--max_steps "$GRPO_STEPS" --save_steps "$GRPO_STEPS"} $GRPO_FLAGS > "$OUT/grpo.log" 2>&1 \
  || { tail -n 40 "$OUT/grpo.log"; exit 1; }
evaluate "$OUT/grpo" "$OUT/grpo/eval"
echo "[demo] 5/5 report ($((SECONDS - start)) s in all)"
"$PYTHON" -m open_r1.evaluation.stages "$OUT" | tee "$OUT/report.txt"
