"""Check the memory planner's activation and log-prob head figures against torch's own accounting.

The policy pass of a GRPO step runs as TRL 1.16 runs it (TRL's fused log-prob head on the completion tokens,
geo-r's image dedupe, left-padded rows, sdpa) on a Qwen2.5-VL at the real 3B widths and vocabulary but shallow depth
(2 decoder layers, 2 vision blocks), randomly initialised in bf16 on the CPU; nothing is downloaded. torch's
MemTracker (torch.distributed._tools) records every tensor the forward and backward allocate; the figure compared
is the peak of everything but the parameters and their gradients, next to `open_r1.plan`'s activations + head for
the same shapes on the same device (on a CPU, TRL's head scores the completion positions as geo-r's trainer has it
do there, and folds its tiles through fp32 copies, which the planner's CPU figure adds). On a GPU, `bench/gpu_check.sh` compares the full-depth model with `torch.cuda.max_memory_allocated`.

    python bench/memory_check.py                      # 1 and 4 views x 128 and 512 completion tokens (~2 min)
    python bench/memory_check.py --views 1 --completion 128 --rows 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from open_r1 import plan as planner  # noqa: E402

CONFIG = planner.MODEL_CONFIGS / "qwen2_5_vl_3b.json"
LAYERS, VISION_DEPTH = 2, 2


def build_model(layers: int = LAYERS, vision_depth: int = VISION_DEPTH):
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = planner.load_model_config(CONFIG, layers, vision_depth)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.train()


def policy_inputs(model, rows: int, views: int, completion: int, max_pixels: int, text_tokens: int) -> dict:
    """TRL's loss inputs for `rows` completions of one prompt: left-padded ids (the first row one token shorter),
    every row's copy of the images, labels on the completion only."""
    from transformers import Qwen2VLImageProcessor

    config = model.config
    processor = Qwen2VLImageProcessor(min_pixels=3136, max_pixels=max_pixels)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 255, (planner.PHOTO[1], planner.PHOTO[0], 3), dtype=np.uint8) for _ in range(views)]
    images = processor(images=photos, return_tensors="pt")
    tokens_per_image = int(images["image_grid_thw"][0].prod()) // config.vision_config.spatial_merge_size**2
    prompt: list[int] = list(rng.integers(0, 150000, text_tokens))
    for _ in range(views):
        prompt += [config.vision_start_token_id] + [config.image_token_id] * tokens_per_image + [config.vision_end_token_id]
    seq = len(prompt) + completion
    ids = torch.full((rows, seq), config.text_config.pad_token_id)
    mask = torch.zeros((rows, seq), dtype=torch.long)
    for r in range(rows):
        start = 1 if r == 0 else 0  # one row padded: the batch carries a padding mask, as TRL's always does
        body = prompt + list(rng.integers(0, 150000, completion - start))
        ids[r, start:] = torch.tensor(body)
        mask[r, start:] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-completion] = -100
    return {
        "input_ids": ids, "attention_mask": mask, "labels": labels,
        "pixel_values": images["pixel_values"].to(torch.bfloat16).repeat(rows, 1),
        "image_grid_thw": images["image_grid_thw"].repeat(rows, 1),
        "prompt_tokens": len(prompt),
    }


def measure(model, inputs: dict, checkpointing: bool) -> tuple[int, float]:
    """(bytes at the peak beyond parameters and gradients, seconds) of one forward + backward."""
    from torch.distributed._tools.mem_tracker import MemTracker

    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    model.zero_grad(set_to_none=True)
    kwargs = {k: v for k, v in inputs.items() if k != "prompt_tokens"}
    tracker = MemTracker()
    tracker.track_external(model)
    start = time.perf_counter()
    with tracker:
        out = model(**kwargs, fused_lm_head=True)
        (-out.log_probs.sum() / kwargs["labels"].ne(-100).sum()).backward()
    seconds = time.perf_counter() - start
    snap = next(iter(tracker.get_tracker_snapshot("peak").values()))
    named = {str(k).split(".")[-1]: v for k, v in snap.items()}
    other = named["Total"] - named.get("PARAM", 0) - named.get("BUFFER", 0) - named.get("GRAD", 0)
    model.zero_grad(set_to_none=True)
    return other, seconds


def planned(rows: int, views: int, completion: int, prompt: int, checkpointing: bool, max_pixels: int) -> dict:
    s = planner.Settings(recipe="bench/memory_check.py", kind="grpo", model="3b-shallow", model_config=CONFIG,
                         micro_batch=rows, views=views, completion_tokens=completion, max_pixels=max_pixels,
                         gradient_checkpointing=checkpointing, num_generations=8, dedupe_images=True, device="cpu")
    m = planner.model_counts(CONFIG, LAYERS, VISION_DEPTH)
    if planner.prompt_tokens(s, m) != prompt:
        raise RuntimeError(f"the planner counts {planner.prompt_tokens(s, m)} prompt tokens, the inputs hold {prompt}")
    acts = planner.activation_bytes(s, m)
    head = planner.head_bytes(s, m)
    return {"activations": acts.kept, "head": head, "recompute": acts.recompute,
            "total": acts.kept + max(head, acts.recompute)}


def recorded_table(path: Path, markdown: bool) -> str:
    """The newest recorded row of each (views, completion, checkpointing), measured beside planned."""
    latest: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["views"], row["completion"], row["checkpointing"]] = row
    head = ["views", "completion", "rows", "checkpointing", "prompt", "measured GiB", "planned GiB",
            "planned / measured"]
    body = [[str(r["views"]), str(r["completion"]), str(r["rows"]), "on" if r["checkpointing"] else "off",
             str(r["prompt_tokens"]), f"{r['measured_bytes'] / planner.GIB:.3f}",
             f"{r['planned_bytes'] / planner.GIB:.3f}", f"{r['ratio']:.3f}"] for _, r in sorted(latest.items())]
    if markdown:
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [head, ["---"] * len(head), *body])
    return "\n".join("  ".join(f"{c:>12}" for c in cells) for cells in [head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--completion", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--rows", type=int, default=2, help="completions in the micro-batch (of one prompt)")
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default="both")
    parser.add_argument("--max_pixels", type=int, default=401408)
    parser.add_argument("--out", default=str(REPO / "bench/results/memory_check.jsonl"))
    parser.add_argument("--table_only", action="store_true", help="print the recorded rows of --out as a table")
    parser.add_argument("--markdown", action="store_true", help="with --table_only: a Markdown table")
    args = parser.parse_args()
    if args.table_only:
        print(recorded_table(Path(args.out), args.markdown))
        return

    from trl.trainer.utils import add_fused_lm_head

    from open_r1.compat import score_completion_tokens_only
    from open_r1.modeling.image_dedupe import encode_images_once

    score_completion_tokens_only()  # as build_grpo_trainer does: the completion positions only, as on a GPU


    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model()
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    encode_images_once(model)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]
    text = planner.PROMPT_TEXT_TOKENS[None]
    print(f"3B widths, {LAYERS} decoder layers, {VISION_DEPTH} vision blocks, bf16, sdpa, {args.rows} rows, CPU")
    print(f"{'views':>5} {'compl':>5} {'ckpt':>4} {'prompt':>6} {'measured GiB':>12} {'planned GiB':>11} "
          f"{'ratio':>6} {'seconds':>7}")
    results = []
    for views in args.views:
        for completion in args.completion:
            inputs = policy_inputs(model, args.rows, views, completion, args.max_pixels, text)
            for ckpt in modes:
                got, seconds = measure(model, inputs, ckpt)
                want = planned(args.rows, views, completion, inputs["prompt_tokens"], ckpt, args.max_pixels)
                ratio = want["total"] / got
                print(f"{views:>5} {completion:>5} {'on' if ckpt else 'off':>4} {inputs['prompt_tokens']:>6} "
                      f"{got / planner.GIB:>12.3f} {want['total'] / planner.GIB:>11.3f} {ratio:>6.3f} {seconds:>7.1f}")
                results.append({"views": views, "completion": completion, "checkpointing": ckpt, "rows": args.rows,
                                "prompt_tokens": inputs["prompt_tokens"], "measured_bytes": got,
                                "planned_bytes": want["total"], "planned_activations": want["activations"],
                                "planned_head": want["head"],
                                "planned_recompute": want["recompute"], "ratio": round(ratio, 4),
                                "layers": LAYERS, "vision_depth": VISION_DEPTH, "device": "cpu",
                                "torch": torch.__version__})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as handle:
            for row in results:
                handle.write(json.dumps(row) + "\n")
        print(f"appended {len(results)} rows to {args.out}")


if __name__ == "__main__":
    main()
