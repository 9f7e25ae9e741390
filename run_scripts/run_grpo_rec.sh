#!/usr/bin/env bash
# GRPO training of Qwen2.5-VL with torchrun + DeepSpeed, after an optional SFT warm start, then an optional
# held-out evaluation of the warm start and of the GRPO model.
#
#   bash run_scripts/run_grpo_rec.sh                      # 8 GPUs: Qwen2.5-VL-3B on $DATA_PATHS / $IMAGE_FOLDERS
#   MODEL=Qwen/Qwen2.5-VL-7B-Instruct NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_scripts/run_grpo_rec.sh
#   WARM_START=llamafactory bash run_scripts/run_grpo_rec.sh       # LLaMA-Factory SFT first, GRPO from its output
#   bash run_scripts/run_grpo_rec.sh --max_steps 500 --learning_rate 2e-6   # extra flags go to grpo_jsonl.py
#   bash run_scripts/run_grpo_rec.sh --dataset_name data/my_set   # GRPO on a Hugging Face dataset (Hub id or folder)
#
# With no GPU and no MODEL, this is the embedded default, the whole recipe on a CPU in minutes: build the tiny
# Qwen2.5-VL, SFT warm start on the demo's train split (reused on later launches), GRPO from it on the demo's GRPO
# split (photos the warm start never saw) with 2 processes under DeepSpeed ZeRO-2, evaluation of both on the
# held-out demo split, and a table. CPU runs use ZeRO-2 because ZeRO-3 gathers every layer's weights at each of
# generation's per-token forward calls; DS_CONFIG=local_scripts/zero3_cpu.json selects ZeRO-3, as on GPUs.
#
# Settings (environment variables):
#   WARM_START   none | native | llamafactory | PATH. native: open_r1.sft (run_sft.sh); llamafactory:
#                run_sft_llamafactory.sh; PATH: start GRPO from that SFT checkpoint. Default: native for the
#                embedded default, none for a real model. A warm start trained here goes to WARM_START_DIR
#                (default output/warm-start/<model>-<kind>-<fingerprint of model, data, recipe and flags>) and is
#                reused while that fingerprint holds.
#   SFT_CONFIG   the SFT recipe: native data_config/sft_demo.yaml (CPU) or sft_3b.yaml (GPUs); llamafactory
#                local_scripts/llamafactory/tiny_cpu_sft.yaml (CPU) or qwen2_5_vl_${FINETUNING}_sft.yaml (GPUs).
#   SFT_FLAGS    extra arguments of the warm start: flags for native ("--max_steps 20"), key=value for
#                llamafactory ("num_train_epochs=2"); SFT_DS_CONFIG (native SFT on GPUs, default ZeRO-3); SEED.
#   SFT_DATA_PATHS, SFT_IMAGE_FOLDERS  the warm start's data: DATA_PATHS / IMAGE_FOLDERS unless set (the embedded
#                default: data/demo/train.jsonl, while GRPO trains on data/demo/grpo.jsonl).
#   SFT_NPROC_PER_NODE  processes of the native warm start: NPROC_PER_NODE on GPUs, 1 on a CPU (as run_sft.sh),
#                where a second process costs more in ZeRO's exchanges than it takes off each step.
#   EVAL         1: evaluate the warm start and the GRPO model on EVAL_DATA / EVAL_IMAGES with EVAL_FLAGS for
#                open_r1.eval_geo (default 1 for the embedded default, on data/demo/test.jsonl; 0 otherwise);
#                EVAL_FLAGS="--dataset_name D" evaluates on the test split of the Hugging Face dataset D instead.
#   MODEL, DATA_PATHS (a.jsonl:b.jsonl), IMAGE_FOLDERS (imgs_a/:imgs_b/), RUN_NAME, OUTPUT_DIR, CONFIG (YAML),
#   DS_CONFIG, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, REPORT_TO
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"
started=$SECONDS

if ! has_gpu; then DS_CONFIG="${DS_CONFIG:-$REPO_HOME/local_scripts/zero2_cpu.json}"; fi
user_data="${DATA_PATHS:-}"
resolve_run grpo "$REPO_HOME/data_config/demo.yaml" "$REPO_HOME/data_config/geo_r_3b.yaml" 2 grpo
# The demo's warm start learns from its train split and GRPO from photos SFT never saw (data/demo/grpo.jsonl); a
# DATA_PATHS of one's own feeds both, unless SFT_DATA_PATHS / SFT_IMAGE_FOLDERS name the warm start's own data.
if [[ "$ON_GPU" == 0 && -z "$user_data" ]]; then SFT_DATA_PATHS="${SFT_DATA_PATHS:-$REPO_HOME/data/demo/train.jsonl}"; fi
SFT_DATA_PATHS="${SFT_DATA_PATHS:-$DATA_PATHS}"
SFT_IMAGE_FOLDERS="${SFT_IMAGE_FOLDERS:-$IMAGE_FOLDERS}"
if [[ "$ON_GPU" == 1 ]]; then EXTRA=($(vllm_flags)); fi
BASE_MODEL="$MODEL"
WARM_START="${WARM_START:-$([[ "$EMBEDDED" == 1 ]] && echo native || echo none)}"
EVAL="${EVAL:-$EMBEDDED}"
SEED_FLAGS=(${SEED:+--seed "$SEED"})
SFT_NPROC="${SFT_NPROC_PER_NODE:-$([[ "$ON_GPU" == 1 ]] && echo "$NPROC_PER_NODE" || echo 1)}"

# warm_start_fingerprint RECIPE: 16 hex digits over what decides the warm start (model, data, recipe, flags)
warm_start_fingerprint() {
  "$PYTHON" -m open_r1.training.warm_start "$BASE_MODEL" ${SFT_DATA_PATHS//:/ } "$1" \
    -- "$WARM_START" "$SFT_IMAGE_FOLDERS" ${SFT_FLAGS:-} "${SEED_FLAGS[@]}" "$SFT_NPROC" "${FINETUNING:-full}"
}

case "$WARM_START" in
  none) ;;
  native|llamafactory)
    if [[ "$WARM_START" == native ]]; then
      sft_recipe="${SFT_CONFIG:-$([[ "$ON_GPU" == 1 ]] && echo data_config/sft_3b.yaml || echo data_config/sft_demo.yaml)}"
    else
      sft_recipe="${SFT_CONFIG:-$([[ "$ON_GPU" == 1 ]] && echo "local_scripts/llamafactory/qwen2_5_vl_${FINETUNING:-full}_sft.yaml" || echo local_scripts/llamafactory/tiny_cpu_sft.yaml)}"
    fi
    WARM_FP="$(warm_start_fingerprint "$sft_recipe")"
    WARM_DIR="${WARM_START_DIR:-$REPO_HOME/output/warm-start/$(basename "$BASE_MODEL")-$WARM_START-$WARM_FP}"
    if [[ "$(cat "$WARM_DIR/warm_start.done" 2>/dev/null)" == "$WARM_FP" ]]; then
      echo "[geo-r] warm start: reusing $WARM_DIR (same model, data, recipe and flags)"
    else
      if [[ -f "$WARM_DIR/warm_start.done" ]]; then
        echo "[geo-r] warm start: $WARM_DIR was trained from another model, data, recipe or flags: training it again"
      elif [[ -n "$(ls -A "$WARM_DIR" 2>/dev/null)" && ! -f "$WARM_DIR/train.log" ]]; then
        echo "[geo-r] WARM_START_DIR=$WARM_DIR holds files that no warm start of this launcher wrote: choose an empty or new folder" >&2; exit 2
      fi
      echo "[geo-r] warm start: $WARM_START SFT of $BASE_MODEL into $WARM_DIR"
      # on several nodes WARM_DIR is on a shared file system: node 0 alone clears what an interrupted try left
      [[ "${NODE_RANK:-0}" == 0 ]] && rm -rf "$WARM_DIR"
      mkdir -p "$WARM_DIR"
      warm_log="$WARM_DIR.log"; [[ "${NODE_RANK:-0}" != 0 ]] && warm_log="$WARM_DIR.node${NODE_RANK}.log"
      sft_env=(OUTPUT_DIR="$WARM_DIR" RUN_NAME="$(basename "$WARM_DIR")" CONFIG="$sft_recipe" MASTER_PORT=
               DATA_PATHS="$SFT_DATA_PATHS" IMAGE_FOLDERS="$SFT_IMAGE_FOLDERS" GEO_R_WARM_START=1)
      [[ "$EMBEDDED" == 1 ]] && sft_env+=(MODEL="$BASE_MODEL")
      if [[ "$WARM_START" == native ]]; then
        # the CPU's ZeRO stage is GRPO's, in SFT_NPROC processes; on GPUs SFT keeps its own ZeRO-3 (SFT_DS_CONFIG)
        sft_env+=(NPROC_PER_NODE="$SFT_NPROC")
        if [[ "$ON_GPU" == 0 ]]; then sft_env+=(DS_CONFIG="$DS_CONFIG")
        else sft_env+=(DS_CONFIG="${SFT_DS_CONFIG:-$REPO_HOME/local_scripts/zero3.json}"); fi
      fi
      if [[ "$WARM_START" == native ]]; then
        env "${sft_env[@]}" bash run_scripts/run_sft.sh ${SFT_FLAGS:-} "${SEED_FLAGS[@]}" 2>&1 | stage_output "$warm_log" "warm start" \
          || { tail -n 40 "$warm_log"; echo "[geo-r] the warm start failed: log in $warm_log" >&2; first_error "$warm_log" >&2; exit 1; }
      else
        env "${sft_env[@]}" bash run_scripts/run_sft_llamafactory.sh ${SFT_FLAGS:-} ${SEED:+seed="$SEED"} 2>&1 | stage_output "$warm_log" "warm start" \
          || { tail -n 40 "$warm_log"; echo "[geo-r] the warm start failed: log in $warm_log" >&2; first_error "$warm_log" >&2; exit 1; }
      fi
      [[ "${NODE_RANK:-0}" == 0 ]] && echo "$WARM_FP" > "$WARM_DIR/warm_start.done"
    fi
    MODEL="$WARM_DIR"; [[ -d "$WARM_DIR/merged" ]] && MODEL="$WARM_DIR/merged"  # a LoRA warm start, merged
    ;;
  *)
    [[ -f "$WARM_START/config.json" ]] || { echo "[geo-r] WARM_START must be none, native, llamafactory or an SFT checkpoint folder (with config.json), not '$WARM_START'" >&2; exit 2; }
    MODEL="$WARM_START" ;;
esac
[[ "$MODEL" != "$BASE_MODEL" ]] && echo "[geo-r] GRPO starts from the warm start $MODEL"

launch_stamp="$(mktemp)"; trap 'rm -f "$launch_stamp"' EXIT
launch src/open_r1/grpo_jsonl.py "${SEED_FLAGS[@]}" "$@"
# finished: a final model saved by this launch, or a run that had already finished (run_finished.json); a
# preempted run saves a checkpoint and neither
if [[ ! -f "$OUTPUT_DIR/run_finished.json" && -z "$(find "$OUTPUT_DIR" -maxdepth 1 -name '*.safetensors' -newer "$launch_stamp")" ]]; then
  echo "[geo-r] GRPO stopped before its last step (a preemption signal): its checkpoint is in $OUTPUT_DIR, and the same command resumes it"
  exit 0
fi
echo "[geo-r] GRPO done: checkpoints and model in $OUTPUT_DIR, log in $OUTPUT_DIR/train.log"

if [[ "$EVAL" == 1 && "${NODE_RANK:-0}" == 0 ]]; then
  if [[ "$EMBEDDED" == 1 ]]; then
    EVAL_DATA="${EVAL_DATA:-$REPO_HOME/data/demo/test.jsonl}"
    EVAL_IMAGES="${EVAL_IMAGES:-$REPO_HOME/data/demo/images}"
    demo_eval_flags="--max_new_tokens 160 --batch_size 32 --question_template {question}"  # the recipes' prompt
    EVAL_FLAGS="${EVAL_FLAGS-$demo_eval_flags}"
  fi
  EVAL_DATA="${EVAL_DATA:-}"; EVAL_IMAGES="${EVAL_IMAGES:-}"; EVAL_FLAGS="${EVAL_FLAGS:-}"
  [[ -n "$EVAL_DATA" && -n "$EVAL_IMAGES" ]] || { echo "[geo-r] EVAL=1: set EVAL_DATA and EVAL_IMAGES (the held-out split)" >&2; exit 2; }
  eval_key="$EVAL_DATA|$EVAL_IMAGES|$EVAL_FLAGS"
  # evaluate NAME MODEL_DIR OUT_DIR: held-out metrics of one model, skipped when they are newer than its weights
  # and were computed on the same split with the same flags
  evaluate() {
    if [[ -f "$3/metrics.json" && "$3/metrics.json" -nt "$2/config.json" && "$(cat "$3/eval.key" 2>/dev/null)" == "$eval_key" \
          && -z "$(find "$2" -maxdepth 1 -name '*.safetensors' -newer "$3/metrics.json")" ]]; then
      echo "[geo-r] evaluation of the $1 model: reusing $3"; return
    fi
    local split="$EVAL_DATA"  # EVAL_FLAGS="--dataset_name D" evaluates on dataset D (its test split) instead
    [[ " ${EVAL_FLAGS:-} " =~ \ --dataset_name[=\ ]([^ ]+) ]] && split="${BASH_REMATCH[1]}"
    echo "[geo-r] evaluating the $1 model on $split"
    "$PYTHON" -m open_r1.eval_geo --model_name_or_path "$2" --data_file_paths "$EVAL_DATA" \
      --image_folders "$EVAL_IMAGES" --output_dir "$3" --overwrite --no_plots ${EVAL_FLAGS:-} 2>&1 | stage_output "$3.log" "evaluation of the $1 model" \
      || { tail -n 30 "$3.log"; echo "[geo-r] evaluation failed: log in $3.log" >&2; first_error "$3.log" >&2; exit 1; }
    echo "$eval_key" > "$3/eval.key"
  }
  stages=()
  if [[ "$MODEL" != "$BASE_MODEL" ]]; then
    evaluate SFT "$MODEL" "$MODEL/eval"; stages+=(--stage "sft=$MODEL/eval")
  fi
  evaluate GRPO "$OUTPUT_DIR" "$OUTPUT_DIR/eval"; stages+=(--stage "grpo=$OUTPUT_DIR/eval")
  "$PYTHON" -m open_r1.evaluation.stages "${stages[@]}" --grpo_run "$OUTPUT_DIR" | tee "$OUTPUT_DIR/report.txt"
fi
elapsed=$((SECONDS - started))
echo "[geo-r] finished in $((elapsed / 60))m$(printf %02d $((elapsed % 60)))s"
echo "[geo-r] curves: tensorboard --logdir $OUTPUT_DIR/runs  (or your wandb project); every logged value: $OUTPUT_DIR/metrics.jsonl"
