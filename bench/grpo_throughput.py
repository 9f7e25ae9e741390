"""Measure a GRPO step for Qwen2.5-VL shapes, split into where the time goes.

Compute does not depend on the weights, so the model is randomly initialised from the real 3B (or 7B) shapes
in `src/open_r1/model_configs/`; nothing is downloaded. The step runs through the same code as
`grpo_jsonl.py`: the jsonl loader and lazy image decoding, the registered geo rewards, and TRL's GRPOTrainer
built by `open_r1.training.grpo.build_grpo_trainer`. Every completion is forced to the same length
(`min_new_tokens` = `max_completion_length`), so token counts are exact.

    python bench/grpo_throughput.py --tiny --steps 2                 # CPU smoke run on the embedded model
    python bench/grpo_throughput.py --size 3b --steps 4              # one GPU, bf16
    python bench/grpo_throughput.py --size 3b --use_vllm true ...    # any GRPOConfig flag passes through

Printed: seconds per step split into generation, reward, forward+backward (loss) and optimizer; prompt and
completion tokens/s; samples/s; peak GPU memory; and MFU of the training phase.

FLOP model (stated, approximate: attention's quadratic term and the vision tower are left out, so MFU is
slightly under-counted): N = parameters of the language model (embeddings excluded when untied lm_head is
absent); training forward+backward over T = prompt+completion tokens costs 6*N*T (plus 2*N*T for the
old/ref-policy forward when TRL computes one); generation costs 2*N per generated token.
MFU(train) = training FLOPs / (loss + optimizer seconds) / peak; peak bf16 dense = 989 TFLOP/s (H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def make_dataset(folder: Path, rows: int, width: int, height: int) -> tuple[Path, Path]:
    """Synthetic street-view-sized JPEGs and jsonl rows in the project's format."""
    rng = np.random.default_rng(0)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    with open(folder / "bench.jsonl", "w") as handle:
        for i in range(rows):
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{i}.jpg", quality=85)
            lat, lon = float(rng.uniform(-60, 70)), float(rng.uniform(-180, 180))
            row = {
                "id": i,
                "image": f"{i}.jpg",
                "conversations": [{"from": "human", "value": "<image>Where was this photo taken?"}],
                "lat": lat,
                "lon": lon,
            }
            handle.write(json.dumps(row) + "\n")
    return folder / "bench.jsonl", images


def build_model(size: str, tiny_dir: Path | None, dtype: torch.dtype):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    if tiny_dir is not None:
        from open_r1.tiny_model import build_tiny_model

        path = build_tiny_model(tiny_dir)
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype)
    spec = json.loads((REPO / "src/open_r1/model_configs" / f"qwen2_5_vl_{size}.json").read_text())
    spec.pop("_comment", None)
    config = Qwen2_5_VLConfig(**spec)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    return model


def language_params(model) -> int:
    """Parameters that every token passes through (the vision tower and the input embedding excluded): the N of
    the FLOP model, from the plan's one shape and parameter model (`open_r1.plan.ModelCounts`)."""
    from open_r1.plan import config_counts

    return config_counts(model.config).language_params


class Timer:
    """Wraps bound methods of one trainer instance to add up their wall time per phase."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def wrap(self, obj, method: str, phase: str):
        original = getattr(obj, method)

        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[phase] += time.perf_counter() - start

        setattr(obj, method, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["3b", "7b"], default="3b")
    parser.add_argument("--tiny", action="store_true", help="the embedded tiny model (CPU smoke run)")
    parser.add_argument("--steps", type=int, default=4, help="measured steps (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=8, help="per-device batch of completions")
    parser.add_argument("--num_generations", type=int, default=8)
    parser.add_argument("--completion_length", type=int, default=256)
    parser.add_argument("--image_size", default="640x480")
    parser.add_argument("--max_pixels", type=int, default=401408)
    args, trl_flags = parser.parse_known_args()

    from trl import GRPOConfig

    from open_r1 import compat
    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import ensure_left_padding
    from open_r1.rewards import build_reward_funcs
    from open_r1.tiny_model import build_processor
    from open_r1.training.grpo import build_grpo_trainer

    on_gpu = torch.cuda.is_available() and not args.tiny
    dtype = torch.bfloat16 if on_gpu else torch.float32
    width, height = (int(v) for v in args.image_size.split("x"))
    if args.tiny:
        args.completion_length = min(args.completion_length, 16)
        args.max_pixels = min(args.max_pixels, 112 * 112)
    work = Path(tempfile.mkdtemp(prefix="geo-r-bench-"))
    steps_total = args.steps + 1
    rows_needed = steps_total * max(1, args.batch // args.num_generations) * 2
    data_file, image_dir = make_dataset(work, rows_needed, width, height)

    model = build_model(args.size, REPO / ".cache/tiny-qwen2.5-vl" if args.tiny else None, dtype)
    processor = ensure_left_padding(build_processor(min_pixels=3136, max_pixels=args.max_pixels))
    n_lang = language_params(model)

    config = dict(
        output_dir=str(work / "out"),
        per_device_train_batch_size=args.batch,
        num_generations=args.num_generations,
        max_completion_length=args.completion_length,
        generation_kwargs={"min_new_tokens": args.completion_length},
        max_steps=steps_total,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=on_gpu,
        seed=0,
    )
    grpo_args = GRPOConfig(**config)
    if trl_flags:  # extra GRPOConfig flags (--use_vllm true, --steps_per_generation 2, ...)
        from transformers import HfArgumentParser

        (grpo_args,) = HfArgumentParser(GRPOConfig).parse_args_into_dataclasses(
            ["--output_dir", config["output_dir"], *trl_flags], args_filename=None
        )
        for key, value in config.items():
            if f"--{key}" not in trl_flags:
                setattr(grpo_args, key, value)

    rows = load_rows(str(data_file), str(image_dir))
    dataset = with_images(rows_to_dataset(rows), args.max_pixels)
    rewards = build_reward_funcs(["format", "haversine", "hierarchy", "geohash"], {})
    trainer = build_grpo_trainer(model, processor, rewards, grpo_args, train_dataset=dataset)

    timer = Timer()
    timer.wrap(trainer, compat.GENERATE, "generation")
    timer.wrap(trainer, compat.CALCULATE_REWARDS, "reward")
    timer.wrap(trainer, "compute_loss", "loss (forward+backward)")  # backward is timed via training_step below
    timer.wrap(trainer, "training_step", "training_step")
    step_marks: list[float] = []
    opt_seconds: list[float] = []

    from transformers import TrainerCallback

    class Marks(TrainerCallback):
        def on_step_begin(self, *a, **k):
            timer.sync()
            step_marks.append(time.perf_counter())

        def on_pre_optimizer_step(self, *a, **k):
            timer.sync()
            self.t = time.perf_counter()

        def on_optimizer_step(self, *a, **k):
            timer.sync()
            opt_seconds.append(time.perf_counter() - self.t)

        def on_step_end(self, *a, **k):
            if len(step_marks) == 1:  # drop the warm-up step from every phase
                timer.seconds.clear()
                opt_seconds.clear()

    trainer.add_callback(Marks())
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    end = time.perf_counter()
    start = step_marks[1] if len(step_marks) > 1 else step_marks[0]
    measured = args.steps
    wall = end - start

    completions = args.batch * measured  # per device, per step: per_device_train_batch_size completions
    completion_tokens = completions * args.completion_length
    # TRL logs the cumulative prompt+completion tokens it trained on as `num_tokens`
    total_tokens = max(h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h)
    prompt_tokens = max(0.0, total_tokens / steps_total * measured - completion_tokens)
    gen = timer.seconds["generation"]
    rew = timer.seconds["reward"]
    opt = sum(opt_seconds)
    train_phase = timer.seconds["training_step"] - gen - rew
    train_tokens = prompt_tokens + completion_tokens
    train_flops = 6 * n_lang * train_tokens
    gen_flops = 2 * n_lang * completion_tokens
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device), None)

    def per_step(seconds: float) -> str:
        return f"{seconds / measured:8.3f} s"

    print(f"\n== GRPO step, {'tiny' if args.tiny else args.size} shapes, {device}, {measured} measured steps ==")
    print(f"language-model parameters (N): {n_lang / 1e9:.3f} B")
    print(f"completions/step: {args.batch}  completion length: {args.completion_length}  image: {args.image_size}")
    print(f"step time               {per_step(wall)}")
    print(f"  generation            {per_step(gen)}")
    print(f"  reward                {per_step(rew)}")
    print(f"  forward+backward      {per_step(max(0.0, train_phase - opt))}")
    print(f"  optimizer             {per_step(opt)}")
    print(f"completion tokens/s     {completion_tokens / wall:10.1f}")
    print(f"prompt tokens/s         {prompt_tokens / wall:10.1f}")
    print(f"samples/s               {completions / wall:10.2f}")
    if torch.cuda.is_available():
        print(f"peak GPU memory         {torch.cuda.max_memory_allocated() / 2**30:10.1f} GiB")
    if peak and train_phase > 0:
        print(f"MFU, training phase     {train_flops / train_phase / peak:10.1%}")
        print(f"MFU, generation         {gen_flops / gen / peak:10.1%}" if gen > 0 else "")
        print(f"MFU, whole step         {(train_flops + gen_flops) / wall / peak:10.1%}")
    else:
        print("MFU                     n/a (no known peak for this device)")


if __name__ == "__main__":
    sys.exit(main())
