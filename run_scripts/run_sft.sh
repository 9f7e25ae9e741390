#!/usr/bin/env bash
# SFT warm start of Qwen2.5-VL with TRL's SFTTrainer (src/open_r1/sft.py), torchrun + DeepSpeed ZeRO-3.
# The native path: no second framework; run_sft_llamafactory.sh does the same step with LLaMA-Factory.
#
#   bash run_scripts/run_sft.sh                                    # 8 GPUs: Qwen2.5-VL-3B on $DATA_PATHS
#   bash run_scripts/run_sft.sh --use_peft true --lora_r 64        # LoRA (merged into the saved model)
#   bash run_scripts/run_sft.sh --targets answer --num_train_epochs 2   # extra flags go to sft.py
#
# The output folder holds model + processor: `MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh` starts GRPO
# from it. With no GPU and no MODEL given, it runs the embedded default on the CPU: the tiny Qwen2.5-VL
# (built if missing), the shipped demo data and data_config/sft_demo.yaml, one process under ZeRO-3 (DS_CONFIG
# chooses another stage, NPROC_PER_NODE more processes; run_grpo_rec.sh's warm start uses
# local_scripts/zero2_cpu.json on CPUs). One process: a second one costs more in ZeRO's exchanges on 2 cores than
# it takes off each step.
# Every setting is an environment variable:
#   MODEL, DATA_PATHS (a.jsonl:b.jsonl), IMAGE_FOLDERS (imgs_a/:imgs_b/), RUN_NAME, OUTPUT_DIR, CONFIG (YAML),
#   DS_CONFIG, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT, REPORT_TO
set -euo pipefail
REPO_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_HOME"
source "$REPO_HOME/run_scripts/common.sh"

resolve_run sft "$REPO_HOME/data_config/sft_demo.yaml" "$REPO_HOME/data_config/sft_3b.yaml" 1
launch src/open_r1/sft.py "$@"

echo "[geo-r] done: model and processor in $OUTPUT_DIR, log in $OUTPUT_DIR/train.log"
[[ -n "${GEO_R_WARM_START:-}" ]] || echo "[geo-r] next: MODEL=$OUTPUT_DIR bash run_scripts/run_grpo_rec.sh"
