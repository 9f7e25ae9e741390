"""What one GRPO step costs at the real Qwen2.5-VL-3B and 7B shapes, and what encoding each image once and
prefilling each distinct prompt once save.

    python bench/step_cost.py                  # FLOP tables, padding, CPU wall time (about 7 minutes on 2 idle cores)
    python bench/step_cost.py --skip_measured  # only the counted figures (seconds)

FLOPs are an exact analytic count from the shapes in `src/open_r1/model_configs/` (no weights, nothing
downloaded), with FlopCounterMode's conventions (torch.utils.flop_counter): every matmul and convolution of the
forward and backward at 2 FLOPs per multiply-add; attention as the fused kernels run it, 4*h*s_q*s_k*d forward
and 2.5 times that backward (the kernel recomputes the scores), over the whole padded square (causal masking not
subtracted); norms, activations, softmax and rotary angles not counted. `tests/test_step_cost.py` checks the count
against FlopCounterMode on the real transformers code (the tiny Qwen2.5-VL's forward, backward and `generate`),
so the formula and the model cannot drift apart.

One GRPO step here is one prompt (1 or 4 photos at the default max_pixels, 401,408) with G = 8 completions of
512 tokens, as geo-r runs it with transformers generation:
- generation: the vision tower on the prompt's images, the LM prefill of the G prompts (logits of the last
  position only), then 511 decoding steps of G rows with the KV cache;
- the policy's forward and backward over the G prompt+completion rows, the vision tower trained (geo-r's
  default), TRL's fused log-prob head on the completion tokens only (as on a GPU) and recomputed in its backward;
- the old policy's forward, when TRL computes it (num_iterations > 1, steps_per_generation above the gradient
  accumulation, or vLLM's importance sampling), and the reference model's forward, when beta > 0.
"Every copy" encodes every copy of the images (G per pass); "each image once" is `--dedupe_images` (the
default): each distinct image once per pass; "+ shared prefill" adds `--shared_prefill` (the default): the LM
prefill runs on the distinct prompt (all but its last token), whose KV cache the G rows share. TRL's default
(beta 0, one iteration) pays generation and the policy pass; the demo recipe (beta 0.04) adds the reference pass,
and vLLM generation or num_iterations > 1 the old-policy pass.

The padding section measures how much of the LM's work is padding tokens: in a synthetic 3B-shaped generation
batch laid out exactly as TRL 1.16 lays it out, and in real steps of the demo recipe on the tiny model. The wall
time section runs real TRL steps on the tiny model with a wider vision tower, the plain path, the deduplicated
vision forward and that with the shared prefill taking turns step by step, and prints their ratios (ratios from
one run: the absolute seconds depend on the machine and its load).

The length-aware sections set TRL's shuffled policy micro-batches beside open_r1.training.length_groups' (rows
sorted by length, each micro-batch cut to its longest row): counted on the synthetic batch at 3B and 7B, measured
on demo-recipe steps with the generation batch in 2 micro-batches, and as CPU wall time taking turns in one run
(`--only_length_aware` skips the other measured sections). Their figures are appended to
bench/results/step_cost.jsonl; docs/step_cost.md reads them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from open_r1.plan import Shapes  # the one shape model of the plan and the benches

REPO = Path(__file__).resolve().parent.parent

ATTENTION_BACKWARD = 2.5  # FlopCounterMode's fused-attention backward: QK^T recomputed, then 4 matmuls
FUSED_HEAD_BACKWARD = 3  # TRL's chunked log-prob head: logits recomputed, then grad of hidden and of weight
PHOTO = (1024, 768)  # a 4:3 photo, larger than max_pixels: the processor scales it down to the bound
MAX_PIXELS = 401408


# --------------------------------------------------------------------------------------------- FLOP model


def window_lengths(s: Shapes, grids: list[tuple[int, int, int]]) -> list[int]:
    """Patches in each attention window of the windowed blocks, from transformers' own window layout."""
    import torch
    from transformers.vision_utils import get_vision_window_index

    _, cu = get_vision_window_index(torch.tensor(grids), s.merge, s.window, s.patch)
    return cu.diff().tolist()


def vision_flops(s: Shapes, grids: list[tuple[int, int, int]], *, train: bool) -> int:
    """The vision tower (patch embedding, blocks, merger) on these images; with `train`, forward and backward."""
    if not grids:
        return 0
    patches = sum(t * h * w for t, h, w in grids)
    merged = patches // s.merge**2
    patch_embed = 2 * patches * s.in_channels * s.temporal * s.patch**2 * s.v_hidden
    linear = s.v_depth * 2 * patches * s.v_hidden * (4 * s.v_hidden + 3 * s.v_intermediate)  # qkv, proj, MLP
    linear += 2 * merged * s.merge**2 * s.v_hidden * (s.merge**2 * s.v_hidden + s.v_out)  # merger MLP
    full = sum(t * (h * w) ** 2 for t, h, w in grids)  # full-attention blocks: each frame attends to itself
    windowed = sum(n * n for n in window_lengths(s, grids))
    attention = 4 * s.v_hidden * (s.v_full_blocks * full + (s.v_depth - s.v_full_blocks) * windowed)
    forward = patch_embed + linear + attention
    if not train:
        return forward
    # backward: the pixels need no gradient (the patch embedding computes its weight's only)
    return forward + patch_embed + 2 * linear + int(ATTENTION_BACKWARD * attention)


def lm_flops(s: Shapes, rows: int, tokens: int, keys: int, head_positions: int, *, train: bool = False,
             fused_head: bool = True) -> int:
    """The language model on `rows` x `tokens` new tokens attending to `keys` positions each (a full forward:
    keys = tokens), the LM head on `head_positions` positions. With `train`, forward and backward: TRL's fused
    log-prob head recomputes the logits in its backward (`fused_head`), a plain head does not."""
    per_token = 2 * s.hidden * (2 * s.heads * s.head_dim + 2 * s.kv_heads * s.head_dim + 3 * s.intermediate)
    linear = s.layers * rows * tokens * per_token
    attention = s.layers * 4 * rows * s.heads * tokens * keys * s.head_dim
    rotary = 3 * rows * s.head_dim * tokens  # the mRoPE angles: one (3 x rows, d/2, 1) @ (1, tokens) matmul
    head = 2 * head_positions * s.hidden * s.vocab
    forward = linear + attention + rotary + head
    if not train:
        return forward
    head_backward = FUSED_HEAD_BACKWARD * head if fused_head else 2 * head
    return forward + 2 * linear + int(ATTENTION_BACKWARD * attention) + head_backward


def attention_flops(s: Shapes, rows: int, tokens: int, keys: int, *, train: bool = False) -> int:
    """The LM's attention kernels alone (the part flash-attention's unpadding skips on padded positions)."""
    forward = s.layers * 4 * rows * s.heads * tokens * keys * s.head_dim
    return forward + (int(ATTENTION_BACKWARD * forward) if train else 0)


def generation_flops(s: Shapes, rows: int, prompt: int, new_tokens: int,
                     distinct: int | None = None) -> tuple[int, int]:
    """(prefill, decoding) of transformers' `generate` for `rows` left-padded prompts of `prompt` tokens and
    `new_tokens` tokens each: the prefill scores the last position only, then one KV-cached step per further
    token (the last token needs no step). With `distinct` (the shared prefill, open_r1.modeling.shared_prefill),
    the base model (no LM head) runs on the `distinct` prompts but their last token, and `generate` then runs
    that last token for every row against the gathered cache and scores it."""
    if distinct is None:
        prefill = lm_flops(s, rows, prompt, prompt, rows)
    else:
        prefill = lm_flops(s, distinct, prompt - 1, prompt - 1, 0) + lm_flops(s, rows, 1, prompt, rows)
    decoding = sum(lm_flops(s, rows, 1, prompt + k, rows) for k in range(1, new_tokens))
    return prefill, decoding


@dataclass
class StepCost:
    vision: dict[str, int]  # per pass: generation, policy, old, ref
    prefill: int
    decoding: int
    policy: int  # LM forward + backward
    old: int  # LM forward
    ref: int  # LM forward
    images_per_pass: int

    def total(self, *, old: bool, ref: bool) -> int:
        lm = self.prefill + self.decoding + self.policy + (self.old if old else 0) + (self.ref if ref else 0)
        return lm + self.vision_total(old=old, ref=ref)

    def vision_total(self, *, old: bool, ref: bool) -> int:
        v = self.vision
        return v["generation"] + v["policy"] + (v["old"] if old else 0) + (v["ref"] if ref else 0)


def step_cost(s: Shapes, grids: list[tuple[int, int, int]], prompt: int, completion: int, generations: int, *,
              dedupe: bool, shared_prefill: bool = False, train_vision: bool = True) -> StepCost:
    """One prompt with `grids` images and `generations` completions of `completion` tokens (none padded).
    `shared_prefill` (which encodes the prompt's images once in generation whatever `dedupe`): the LM prefill
    of the one distinct prompt instead of its G copies."""
    copies = 1 if dedupe else generations
    images = grids * copies
    prefill, decoding = generation_flops(s, generations, prompt, completion, 1 if shared_prefill else None)
    width = prompt + completion
    head = generations * completion  # TRL scores the completion tokens only (on a GPU)
    return StepCost(
        vision={
            "generation": vision_flops(s, grids if shared_prefill else images, train=False),
            "policy": vision_flops(s, images, train=train_vision),
            "old": vision_flops(s, images, train=False),
            "ref": vision_flops(s, images, train=False),
        },
        prefill=prefill,
        decoding=decoding,
        policy=lm_flops(s, generations, width, width, head, train=True),
        old=lm_flops(s, generations, width, width, head),
        ref=lm_flops(s, generations, width, width, head),
        images_per_pass=len(images),
    )


# ------------------------------------------------------------------------------------------ prompt shapes


def qwen_processor(max_pixels: int = MAX_PIXELS):
    """The Qwen2.5-VL processor with the real Qwen2 vocabulary, built offline (open_r1.tiny_model)."""
    from open_r1.tiny_model import build_processor

    return build_processor(min_pixels=3136, max_pixels=max_pixels, vocab="qwen")


def prompt_shape(processor, views: int, photo=PHOTO) -> tuple[int, list[tuple[int, int, int]]]:
    """(prompt tokens, image grids) of a geo-r GRPO prompt with `views` photos, as TRL renders it."""
    from PIL import Image

    from open_r1.answer import build_question

    question = build_question("Where was this photo taken?", is_geo=True, template=None)
    images = [Image.new("RGB", photo, (90, 120, 150)) for _ in range(views)]
    content = [*({"type": "image"} for _ in images), {"type": "text", "text": question}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)
    batch = processor(text=[text], images=images, return_tensors="pt")
    return batch["input_ids"].shape[1], [tuple(g) for g in batch["image_grid_thw"].tolist()]


# ------------------------------------------------------------------------------------------------ tables


def tflops(x: float) -> str:
    return f"{x / 1e12:,.1f}"


def flop_table(processor, generations: int, completion: int) -> list[str]:
    lines = [
        f"FLOPs of one GRPO step (TFLOP): one prompt of 1 or 4 {PHOTO[0]}x{PHOTO[1]} photos at max_pixels "
        f"{MAX_PIXELS:,}, G = {generations}, completions of {completion} tokens, vision tower trained",
        "",
        "| model | views | prompt tokens | path | images/pass | vision | LM prefill | decoding | policy fwd+bwd "
        "| old policy fwd | ref fwd | step, beta 0 | step, + ref | step, + ref + old | vision share | saved |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = []
    paths = {"every copy": (False, False), "each image once": (True, False), "+ shared prefill": (True, True)}
    for size in ("3b", "7b"):
        s = Shapes.of(size)
        for views in (1, 4):
            prompt, grids = prompt_shape(processor, views)
            costs = {name: step_cost(s, grids, prompt, completion, generations, dedupe=dedupe,
                                     shared_prefill=shared)
                     for name, (dedupe, shared) in paths.items()}
            before = costs["every copy"]
            for name, c in costs.items():
                full = c.total(old=True, ref=True)
                saved = ""
                if c is not before:
                    saved = " / ".join(
                        f"{1 - c.total(old=o, ref=r) / before.total(old=o, ref=r):.1%}"
                        for o, r in ((False, False), (False, True), (True, True))
                    )
                lines.append(
                    f"| {size.upper()} | {views} | {prompt:,} | {name} "
                    f"| {c.images_per_pass} | {tflops(c.vision_total(old=True, ref=True))} | {tflops(c.prefill)} "
                    f"| {tflops(c.decoding)} | {tflops(c.policy)} | {tflops(c.old)} | {tflops(c.ref)} "
                    f"| {tflops(c.total(old=False, ref=False))} | {tflops(c.total(old=False, ref=True))} "
                    f"| {tflops(full)} | {c.vision_total(old=True, ref=True) / full:.0%} | {saved} |"
                )
            summary.append((size, views, grids, costs))
    size, views, grids, _ = summary[-1]
    lines += [
        "",
        f"vision = the tower in every pass (generation, policy forward+backward, old, ref); images/pass = images "
        f"the tower encodes per pass; a photo is {grids[0][1]}x{grids[0][2]} patches = "
        f"{grids[0][1] * grids[0][2] // 4} image tokens; 'saved' = fewer FLOPs per step than 'every copy' with "
        "beta 0 / + ref / + ref + old; '+ shared prefill' = each image once and the LM prefill of the distinct "
        "prompt only (its last token then runs for each of the G rows).",
    ]
    return lines


def recipe_note(processor, generations: int, completion: int) -> list[str]:
    """TRL shuffles the generation batch before cutting it into micro-batches: with steps_per_generation > 1
    (the 3B recipe: 8 rows per device, 2 accumulation steps) a policy micro-batch mixes prompts."""
    rows, micro = 2 * generations, generations
    rng = np.random.default_rng(0)
    draws = [len(set(rng.permutation(rows)[:micro] // generations)) for _ in range(20000)]
    distinct = statistics.fmean(draws)
    s = Shapes.of("3b")
    prompt, grids = prompt_shape(processor, 4)
    before = step_cost(s, grids, prompt, completion, generations, dedupe=False)
    after = step_cost(s, grids, prompt, completion, generations, dedupe=True)
    shared = step_cost(s, grids, prompt, completion, generations, dedupe=True, shared_prefill=True)
    # rows / micro micro-batches each encode `distinct` prompts' images, for rows / G prompts
    per_prompt_policy = vision_flops(s, grids, train=True) * distinct * generations / micro
    after.vision["policy"] = shared.vision["policy"] = int(per_prompt_policy)
    return [
        f"3B recipe (per_device_train_batch_size {micro}, gradient_accumulation_steps 2): TRL shuffles the "
        f"{rows} rows of a generation batch into 2 micro-batches, which hold {distinct:.2f} prompts on average "
        f"(20,000 shuffles), so the policy pass encodes each image {distinct:.2f} times instead of once; generation "
        f"and the old/ref passes (run on the unshuffled batch) still encode it once. 4 views, 3B, beta 0: "
        f"{1 - after.total(old=False, ref=False) / before.total(old=False, ref=False):.0%} fewer FLOPs per step, "
        f"{1 - shared.total(old=False, ref=False) / before.total(old=False, ref=False):.0%} with the shared prefill "
        "(generation runs on the unshuffled batch: the G copies of a prompt share one prefill).",
    ]


# --------------------------------------------------------------------------------------- padding, counted


def trl_padding(s: Shapes, prompts: list[int], completions: list[list[int]], micro_batch: int,
                shuffles: int = 2000) -> list[tuple[str, float, float, float | None, float]]:
    """(pass, padded share of the LM's tokens, share of the pass's LM FLOPs spent on padding, that share if each
    forward dropped the columns that are padding in all its rows, share of the pass's FLOPs that
    flash-attention's unpadding would save) for one TRL 1.16 generation batch on one
    process: prompts left-padded and completions right-padded across the whole generation batch; old/ref
    log-probs in chunks of `micro_batch` rows in generation order; the policy pass on shuffled micro-batches of
    the same width; transformers `generate` decoding every row until the longest completion ends."""
    rows = [(p, c) for p, group in zip(prompts, completions, strict=True) for c in group]
    longest_prompt, longest = max(p for p, _ in rows), max(c for _, c in rows)
    width = longest_prompt + longest

    def passes(chunk, *, train, trim):
        w = max(p for p, _ in chunk) + max(c for _, c in chunk) if trim else width
        return lm_flops(s, len(chunk), w, w, sum(c for _, c in chunk), train=train)

    def alone(*, train):
        return sum(lm_flops(s, 1, p + c, p + c, c, train=train) for p, c in rows)

    chunks = [rows[i:i + micro_batch] for i in range(0, len(rows), micro_batch)]
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(shuffles):
        order = rng.permutation(len(rows))
        shuffled.append([[rows[i] for i in order[j:j + micro_batch]] for j in range(0, len(rows), micro_batch)])

    real_tokens = sum(p + c for p, c in rows)
    log_prob_tokens = 1 - real_tokens / (len(rows) * width)
    prefill = lm_flops(s, len(rows), longest_prompt, longest_prompt, len(rows))
    decoding = sum(lm_flops(s, len(rows), 1, longest_prompt + k, len(rows)) for k in range(1, longest))
    real_decoding = sum(lm_flops(s, 1, 1, p + k, 1) for p, c in rows for k in range(1, c))
    old_ref = sum(passes(c, train=False, trim=False) for c in chunks)
    old_ref_trimmed = sum(passes(c, train=False, trim=True) for c in chunks)
    policy = sum(passes(c, train=True, trim=False) for c in chunks)
    policy_trimmed = statistics.fmean(sum(passes(c, train=True, trim=True) for c in draw) for draw in shuffled)
    # flash-attention's unpadding: attention over real tokens only, the rest of the pass unchanged
    def attention_saved(chunks_, *, train, total):
        padded = sum(attention_flops(s, len(c), width, width, train=train) for c in chunks_)
        real = sum(attention_flops(s, 1, p + c, p + c, train=train) for p, c in rows)
        return (padded - real) / total

    prefill_attention = attention_flops(s, len(rows), longest_prompt, longest_prompt) - sum(
        attention_flops(s, 1, p, p) for p, _ in rows)
    decoding_attention = sum(attention_flops(s, len(rows), 1, longest_prompt + k) for k in range(1, longest)) - sum(
        attention_flops(s, 1, 1, p + k) for p, c in rows for k in range(1, c))
    return [
        ("generation prefill (transformers)", 1 - sum(p for p, _ in rows) / (len(rows) * longest_prompt),
         1 - sum(lm_flops(s, 1, p, p, 1) for p, _ in rows) / prefill, None, prefill_attention / prefill),
        ("generation decoding (transformers)", 1 - sum(c for _, c in rows) / (len(rows) * longest),
         1 - real_decoding / decoding, None, decoding_attention / decoding),
        ("old policy / reference forward", log_prob_tokens, 1 - alone(train=False) / old_ref,
         1 - alone(train=False) / old_ref_trimmed, attention_saved(chunks, train=False, total=old_ref)),
        ("policy forward+backward", log_prob_tokens, 1 - alone(train=True) / policy,
         1 - alone(train=True) / policy_trimmed, attention_saved(chunks, train=True, total=policy)),
    ]


def padding_table(processor, generations: int, completion: int) -> list[str]:
    rng = np.random.default_rng(0)
    prompt_1, _ = prompt_shape(processor, 1)
    prompt_4, _ = prompt_shape(processor, 4)
    lengths = [sorted(rng.integers(64, completion + 1, generations).tolist()) for _ in range(2)]
    lines = [
        f"Padding, synthetic 3B batch: one process's generation batch of a 1-view ({prompt_1:,} tokens) and a "
        f"4-view ({prompt_4:,} tokens) prompt, G = {generations} completions each, lengths uniform in 64-"
        f"{completion} (1-view: {lengths[0]}; 4-view: {lengths[1]}), {generations} rows per micro-batch (the 3B "
        "recipe), laid out as TRL 1.16 does",
        "",
        "| pass | padded share of LM tokens | share of the pass's LM FLOPs on padding | the same if each forward "
        "dropped its all-padding columns | saved by flash-attention's unpadding |",
        "| --- | --- | --- | --- | --- |",
    ]
    passes = trl_padding(Shapes.of("3b"), [prompt_1, prompt_4], lengths, generations)
    for name, tokens, flops, trimmed, attention in passes:
        lines.append(f"| {name} | {tokens:.0%} | {flops:.0%} | {'-' if trimmed is None else f'{trimmed:.0%}'} "
                     f"| {attention:.0%} |")
    lines += ["", "vLLM generation has no padding (each sequence is its own); the policy micro-batches are TRL's "
              "shuffle of the generation batch (mean over 2,000 shuffles)."]
    return lines


# ------------------------------------------------------------------------- length-aware micro-batches, counted


def policy_layouts(rows: list[tuple[int, int, int]], micro_batch: int, shuffles: int = 500, seed: int = 0):
    """{layout: draws, each a list of (micro-batch rows of (prompt tokens, completion tokens, prompt), width)}:
    TRL 1.16's shuffled micro-batches, all as wide as the generation batch's longest prompt plus its longest
    completion, and open_r1.training.length_groups' (rows sorted by (prompt, completion) tokens, each micro-batch
    cut to its longest prompt plus its longest completion)."""
    width = max(p for p, _, _ in rows) + max(c for _, c, _ in rows)
    rng = np.random.default_rng(seed)
    shuffled = []
    for _ in range(shuffles):
        order = rng.permutation(len(rows))
        shuffled.append([([rows[i] for i in order[j:j + micro_batch]], width)
                         for j in range(0, len(rows), micro_batch)])
    ordered = sorted(rows)
    chunks = [ordered[j:j + micro_batch] for j in range(0, len(ordered), micro_batch)]
    grouped = [[(chunk, max(p for p, _, _ in chunk) + max(c for _, c, _ in chunk)) for chunk in chunks]]
    return {"TRL's shuffled micro-batches": shuffled, "length-aware micro-batches": grouped}


def length_aware_figures(s: Shapes, prompts: list[tuple[int, list]], completions: list[list[int]],
                         micro_batch: int) -> dict[str, dict[str, float]]:
    """Per layout: the policy pass's padded share of tokens and of its LM FLOPs, its FLOPs (LM and the trained
    vision tower, each distinct image once per micro-batch), and the step's FLOPs with beta 0 (generation as
    transformers runs it with each image once and the shared prefill, unchanged by the layout, plus that pass)."""
    rows = [(p, c, k) for k, ((p, _), group) in enumerate(zip(prompts, completions, strict=True)) for c in group]
    grids = [g for _, g in prompts]
    longest_prompt, longest = max(p for p, _ in prompts), max(c for _, c, _ in rows)
    generation = sum(vision_flops(s, g, train=False) for g in grids)
    generation += sum(lm_flops(s, 1, p - 1, p - 1, 0) for p, _ in prompts)  # the shared prefill
    generation += lm_flops(s, len(rows), 1, longest_prompt, len(rows))
    generation += sum(lm_flops(s, len(rows), 1, longest_prompt + k, len(rows)) for k in range(1, longest))
    real = sum(lm_flops(s, 1, p + c, p + c, c, train=True) for p, c, _ in rows)
    real_tokens = sum(p + c for p, c, _ in rows)
    figures = {}
    for name, draws in policy_layouts(rows, micro_batch).items():
        tokens, lm, vision = [], [], []
        for draw in draws:
            tokens.append(1 - real_tokens / sum(len(chunk) * w for chunk, w in draw))
            lm.append(sum(lm_flops(s, len(chunk), w, w, sum(c for _, c, _ in chunk), train=True)
                          for chunk, w in draw))
            vision.append(sum(vision_flops(s, [g for k in sorted({k for *_, k in chunk}) for g in grids[k]],
                                           train=True) for chunk, _ in draw))
        policy_lm, policy_vision = statistics.fmean(lm), statistics.fmean(vision)
        figures[name] = {"padded_tokens": statistics.fmean(tokens), "padded_flops": 1 - real / policy_lm,
                         "policy_lm": policy_lm, "policy": policy_lm + policy_vision,
                         "step": generation + policy_lm + policy_vision}
    return figures


def length_aware_table(processor, generations: int, completion: int) -> tuple[list[str], list[dict]]:
    rng = np.random.default_rng(0)
    one, four = prompt_shape(processor, 1), prompt_shape(processor, 4)
    lengths = [sorted(rng.integers(64, completion + 1, generations).tolist()) for _ in range(2)]
    lines = [
        f"Length-aware micro-batches (open_r1.training.length_groups), counted: the synthetic batch above (a 1-view "
        f"and a 4-view prompt, G = {generations} each, completions 64-{completion}, {generations} rows per "
        "micro-batch, 2 micro-batches: the 3B recipe's layout), at both widths",
        "",
        "| model | policy micro-batches | padded share of the policy pass's tokens | of its LM FLOPs | policy pass "
        "TFLOP (LM + vision) | step TFLOP, beta 0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    records = []
    for size in ("3b", "7b"):
        figures = length_aware_figures(Shapes.of(size), [one, four], lengths, generations)
        for name, f in figures.items():
            lines.append(f"| {size.upper()} | {name} | {f['padded_tokens']:.0%} | {f['padded_flops']:.0%} "
                         f"| {tflops(f['policy'])} | {tflops(f['step'])} |")
            records.append({"section": "length_aware_counted", "model": size, "layout": name,
                            **{k: round(v, 4) if v < 1 else v for k, v in f.items()}})
        before, after = figures.values()
        lines.append(f"| {size.upper()} | saved | | | {1 - after['policy'] / before['policy']:.0%} "
                     f"(LM: {1 - after['policy_lm'] / before['policy_lm']:.0%}) "
                     f"| {1 - after['step'] / before['step']:.0%} |")
    lines += ["", "TRL's layout: mean over shuffles; vision: the policy pass encodes each distinct image of a "
              "micro-batch once (--dedupe_images), so a micro-batch holding one prompt's rows encodes its images "
              "once where TRL's shuffle encodes both prompts' in both micro-batches."]
    return lines, records


# ------------------------------------------------------------------------------------ measured on the CPU


def varied_reward(prompts, completions, **kwargs) -> list[float]:
    """Cheap and varied, so GRPO has advantages to train on; the bench measures work, not learning."""
    return [len(set(str(c))) / (1 + len(str(c))) for c in completions]


def grpo_args(output_dir: str, **settings):
    from trl import GRPOConfig

    return GRPOConfig(output_dir=output_dir, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                      logging_steps=1, gradient_checkpointing=False, seed=0, **settings)


class PassRecorder:
    """Forward pre-hooks on the policy and reference models that sort every call into a GRPO pass and count its
    LM tokens: computed (rows x width) and real (attention mask); decoding slots against completion tokens."""

    def __init__(self, trainer):
        self.tokens: dict[str, list[int]] = {}
        self.generated_slots = 0  # rows x tokens that generate produced (finished rows keep producing padding)
        self.completion_tokens = 0  # real completion tokens (scored by the policy pass)
        trainer.model.register_forward_pre_hook(self.hook("policy"), with_kwargs=True)
        if trainer.ref_model is not None:
            trainer.ref_model.register_forward_pre_hook(self.hook("ref"), with_kwargs=True)

    def add(self, name: str, computed: int, real: int) -> None:
        total = self.tokens.setdefault(name, [0, 0])
        total[0] += computed
        total[1] += real

    def hook(self, model_name: str):
        import torch

        def record(module, args, kwargs):
            ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
            if ids is None or mask is None:
                return
            if kwargs.get("fused_lm_head"):  # TRL's log-prob passes
                if torch.is_grad_enabled():
                    name = "policy forward+backward"
                    self.completion_tokens += int((kwargs["labels"] != -100).sum())
                else:
                    name = "reference forward" if model_name == "ref" else "old policy forward"
                self.add(name, mask.numel(), int(mask.sum()))
            else:  # generate: the prefill, then one call per further token
                if ids.shape[1] > 1:
                    self.add("generation prefill", ids.numel(), int(mask.sum()))
                self.generated_slots += ids.shape[0]

        return record

    def shares(self) -> dict[str, float]:
        shares = {name: 1 - real / computed for name, (computed, real) in self.tokens.items()}
        if self.generated_slots:
            shares["generation decoding"] = 1 - self.completion_tokens / self.generated_slots
        order = ["generation prefill", "generation decoding", "policy forward+backward", "old policy forward",
                 "reference forward"]
        return {name: shares[name] for name in order if name in shares}


def demo_padding(steps: int) -> list[str]:
    """Padded shares in real steps of the demo recipe (data_config/demo.yaml) on the tiny model and demo data."""
    import yaml
    from transformers import AutoProcessor

    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import load_model
    from open_r1.tiny_model import build_tiny_model
    from open_r1.training.grpo import build_grpo_trainer

    recipe = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())
    from trl import ModelConfig

    path = build_tiny_model(REPO / ".cache" / "tiny-qwen2.5-vl")
    rows = load_rows(str(REPO / recipe["data_file_paths"]), str(REPO / recipe["image_folders"]))
    keys = ("per_device_train_batch_size", "num_generations", "max_completion_length", "temperature", "beta")
    with tempfile.TemporaryDirectory() as out:
        trainer = build_grpo_trainer(
            load_model(ModelConfig(model_name_or_path=str(path))),
            AutoProcessor.from_pretrained(path),
            [varied_reward],
            grpo_args(out, max_steps=steps, **{k: recipe[k] for k in keys}),
            train_dataset=with_images(rows_to_dataset(rows), max_pixels=recipe["max_pixels"]),
            shared_prefill=False,  # the recorder sees generate's prefill as TRL lays it out, every copy
        )
        recorder = PassRecorder(trainer)
        trainer.train()
    prompts = recipe["per_device_train_batch_size"] // recipe["num_generations"]
    lines = [
        f"Padding, measured: {steps} steps of the demo recipe on the tiny model (data/demo: 96 rows with 1 photo, "
        f"32 with 4; {prompts} prompts x G = {recipe['num_generations']} per step, completions up to "
        f"{recipe['max_completion_length']} tokens, beta {recipe['beta']})",
        "",
        "| pass | padded share of LM tokens |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {share:.0%} |" for name, share in recorder.shares().items()]
    return lines


def wide_vision_model(folder: Path, width: int, depth: int, max_pixels: int) -> Path:
    """The tiny Qwen2.5-VL with a wider, deeper vision tower (random weights), so that the vision tower's share
    of a step is closer to the real model's."""
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from open_r1.tiny_model import build_tiny_model

    tiny = build_tiny_model(REPO / ".cache" / "tiny-qwen2.5-vl")
    config = AutoConfig.from_pretrained(tiny)
    vision = config.vision_config
    vision.hidden_size, vision.intermediate_size, vision.num_heads, vision.depth = width, 2 * width, width // 32, depth
    vision.fullatt_block_indexes = [depth // 2 - 1, depth - 1]
    processor = AutoProcessor.from_pretrained(tiny)
    processor.image_processor.max_pixels = max_pixels
    processor.image_processor.size = {"shortest_edge": 3136, "longest_edge": max_pixels}
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def four_view_rows(folder: Path, count: int, side: int, views: tuple[int, ...] = (4,)):
    """`count` rows of 4 distinct random photos each (or row i: views[i % len(views)]), in the project's jsonl
    format."""
    from PIL import Image

    from open_r1.data import load_rows

    rng = np.random.default_rng(0)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    with open(folder / "rows.jsonl", "w") as handle:
        for i in range(count):
            names = []
            for view in range(views[i % len(views)]):
                names.append(f"{i}-{view}.jpg")
                Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(images / names[-1])
            row = {"id": i, "image": names, "lat": 10.0 + i, "lon": 20.0,
                   "conversations": [{"from": "human", "value": "Where was this photo taken?"}]}
            handle.write(json.dumps(row) + "\n")
    return load_rows(str(folder / "rows.jsonl"), str(images))


def take_turns(names: list[str], switch):
    """(a TrainerCallback that runs step 0 as a warm-up on names[0], then each step on the next of `names` in turn,
    calling `switch(name)` before it; wall seconds per step by name; this process's CPU seconds per step by name,
    all threads), the warm-up and the first timed step left out."""
    from transformers import TrainerCallback

    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}

    class TakeTurns(TrainerCallback):
        def __init__(self):
            self.path, self.start, self.cpu_start = names[0], 0.0, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            step = state.global_step  # step 0 warms up on the plain path
            self.path = names[0] if step == 0 else names[(step - 1) % len(names)]
            switch(self.path)
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step > 1:  # the first step warms up
                times[self.path].append(time.perf_counter() - self.start)
                cpu[self.path].append(time.process_time() - self.cpu_start)

    return TakeTurns(), times, cpu


WALL_PATHS = {"every copy": (False, False), "each image once": (True, False), "+ shared prefill": (True, True)}


def wall_time(rounds: int, generations: int, width: int, depth: int, side: int, completion: int) -> list[str]:
    """Seconds per GRPO step on the CPU with the plain path, the deduplicated vision forward, and that with the
    shared prefill, taking turns step by step in one run (after one warm-up step), so all see the same machine
    load."""
    import torch
    from transformers import AutoProcessor
    from trl import ModelConfig

    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.image_dedupe import encode_images_once
    from open_r1.modeling.loading import load_model
    from open_r1.modeling.shared_prefill import share_prefill
    from open_r1.training.grpo import build_grpo_trainer

    names = list(WALL_PATHS)

    def switch(path: str) -> None:
        dedupe, shared = WALL_PATHS[path]
        encode_images_once(trainer.model, enabled=dedupe)
        encode_images_once(trainer.ref_model, enabled=dedupe)
        share_prefill(trainer.model, enabled=shared)

    turns, times, cpu = take_turns(names, switch)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = wide_vision_model(tmp / "model", width, depth, max_pixels=side * side)
        rows = four_view_rows(tmp / "data", 8, side)
        model = load_model(ModelConfig(model_name_or_path=str(path)))
        processor = AutoProcessor.from_pretrained(path)
        prompt, grids = prompt_shape(processor, 4, photo=(side, side))
        trainer = build_grpo_trainer(
            model,
            processor,
            [varied_reward],
            grpo_args(str(tmp / "out"), max_steps=1 + len(names) * rounds,
                      per_device_train_batch_size=2 * generations, num_generations=generations,
                      max_completion_length=completion, beta=0.04),
            train_dataset=with_images(rows_to_dataset(rows), max_pixels=side * side),
        )
        trainer.add_callback(turns)
        trainer.train()
    shapes = Shapes.from_config(model.config)
    # counted for the step's 2 prompts (same shapes, so twice one prompt), completions at full length (the tiny
    # model rarely stops early)
    costs = {name: step_cost(shapes, grids, prompt, completion, generations, dedupe=dedupe, shared_prefill=shared)
             for name, (dedupe, shared) in WALL_PATHS.items()}
    median = {key: statistics.median(values) for key, values in times.items()}
    cpu_median = {key: statistics.median(values) for key, values in cpu.items()}

    def row(name):
        cost = costs[name]
        total = 2 * cost.total(old=False, ref=True)
        return (f"| {name} | {median[name]:.2f} | {', '.join(f'{t:.1f}' for t in times[name])} | "
                f"{cpu_median[name]:.2f} | {total / 1e9:,.1f} G | "
                f"{cost.vision_total(old=False, ref=True) / cost.total(old=False, ref=True):.0%} |")

    plain = names[0]
    return [
        f"CPU wall time: tiny Qwen2.5-VL with a {width}-wide, {depth}-block vision tower, 2 prompts of 4 "
        f"{side}x{side} photos x G = {generations}, completions of {completion} tokens, beta 0.04; {rounds} steps "
        f"each way, taking turns in one run after a warm-up step; torch threads: {torch.get_num_threads()}",
        "",
        "| path | median wall s/step | steps (wall s) | median CPU s/step | counted FLOPs/step "
        "| vision share of FLOPs |",
        "| --- | --- | --- | --- | --- | --- |",
        *(row(name) for name in names),
        "",
        "ratio to every copy, medians: " + "; ".join(
            f"{name}: {median[name] / median[plain]:.2f} of the wall time, "
            f"{cpu_median[name] / cpu_median[plain]:.2f} of the CPU time" for name in names[1:])
        + " per step (CPU time counts this process only, so it moves less with the machine's other load)",
    ]


def demo_length_padding(steps: int) -> tuple[list[str], list[dict]]:
    """The policy pass's padded share in real steps of the demo recipe on the tiny model with its generation batch
    in 2 micro-batches, TRL's and length-aware (two runs from the same seed: the same rows and completions)."""
    import yaml
    from transformers import AutoProcessor
    from trl import ModelConfig

    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import load_model
    from open_r1.tiny_model import build_tiny_model
    from open_r1.training.grpo import build_grpo_trainer

    recipe = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())
    path = build_tiny_model(REPO / ".cache" / "tiny-qwen2.5-vl")
    rows = load_rows(str(REPO / recipe["data_file_paths"]), str(REPO / recipe["image_folders"]))
    keys = ("num_generations", "max_completion_length", "temperature", "beta")
    micro = recipe["per_device_train_batch_size"] // 2
    shares, logged = {}, {}
    for grouped in (False, True):
        with tempfile.TemporaryDirectory() as out:
            trainer = build_grpo_trainer(
                load_model(ModelConfig(model_name_or_path=str(path))),
                AutoProcessor.from_pretrained(path),
                [varied_reward],
                grpo_args(out, max_steps=steps, per_device_train_batch_size=micro, gradient_accumulation_steps=2,
                          **{k: recipe[k] for k in keys}),
                train_dataset=with_images(rows_to_dataset(rows), max_pixels=recipe["max_pixels"]),
                length_aware_micro_batches=grouped,
            )
            recorder = PassRecorder(trainer)
            trainer.train()
            shares[grouped] = recorder.shares()["policy forward+backward"]
            logged[grouped] = [h.get("padding/policy") for h in trainer.state.log_history if "padding/policy" in h]
    lines = [
        f"Length-aware micro-batches, measured: {steps} steps of the demo recipe on the tiny model (its generation "
        f"batch of {2 * micro} rows, 1-photo and 4-photo prompts of the demo data, in 2 micro-batches of {micro}: "
        f"per_device_train_batch_size {micro}, gradient_accumulation_steps 2; the recipe itself runs 1 micro-batch "
        "of 32, which has nothing to regroup)",
        "",
        "| policy micro-batches | padded share of the policy pass's tokens |",
        "| --- | --- |",
        f"| TRL's shuffled micro-batches | {shares[False]:.0%} |",
        f"| length-aware micro-batches | {shares[True]:.0%} (logged padding/policy per step: "
        f"{', '.join(f'{v:.0%}' for v in logged[True])}) |",
    ]
    records = [{"section": "length_aware_demo", "layout": name, "padded_tokens": round(shares[g], 4)}
               for g, name in ((False, "TRL's shuffled micro-batches"), (True, "length-aware micro-batches"))]
    return lines, records


def length_wall_time(rounds: int, generations: int, width: int, depth: int, side: int,
                     completion: int) -> tuple[list[str], list[dict]]:
    """Seconds per GRPO step on the CPU with TRL's micro-batches and with length-aware ones, taking turns step by
    step in one run (after a warm-up step), each step a 1-view and a 4-view prompt in 2 micro-batches."""
    import torch
    from transformers import AutoProcessor
    from trl import ModelConfig

    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import load_model
    from open_r1.training.grpo import build_grpo_trainer
    from open_r1.training.length_groups import group_by_length

    names = ["TRL's micro-batches", "length-aware micro-batches"]
    turns, times, cpu = take_turns(names, lambda path: group_by_length(trainer, enabled=path == names[1]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = wide_vision_model(tmp / "model", width, depth, max_pixels=side * side)
        rows = four_view_rows(tmp / "data", 2 * (1 + len(names) * rounds), side, views=(1, 4))
        trainer = build_grpo_trainer(
            load_model(ModelConfig(model_name_or_path=str(path))),
            AutoProcessor.from_pretrained(path),
            [varied_reward],
            grpo_args(str(tmp / "out"), max_steps=1 + len(names) * rounds, per_device_train_batch_size=generations,
                      gradient_accumulation_steps=2, num_generations=generations, max_completion_length=completion,
                      beta=0.04, shuffle_dataset=False),
            train_dataset=with_images(rows_to_dataset(rows), max_pixels=side * side),
        )
        trainer.add_callback(turns)
        trainer.train()
    median = {key: statistics.median(values) for key, values in times.items()}
    cpu_median = {key: statistics.median(values) for key, values in cpu.items()}
    plain, grouped = names
    lines = [
        f"Length-aware micro-batches, CPU wall time: tiny Qwen2.5-VL with a {width}-wide, {depth}-block vision "
        f"tower, each step a 1-view and a 4-view prompt of {side}x{side} photos x G = {generations} in 2 "
        f"micro-batches of {generations}, completions of up to {completion} tokens, beta 0.04, each image encoded "
        f"once and the shared prefill on both sides; {rounds} steps each way, taking turns in one run after a "
        f"warm-up step; torch threads: {torch.get_num_threads()}",
        "",
        "| policy micro-batches | median wall s/step | steps (wall s) | median CPU s/step |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {median[name]:.2f} | {', '.join(f'{t:.1f}' for t in times[name])} | {cpu_median[name]:.2f} |"
          for name in names),
        "",
        f"ratio, length-aware to TRL's, medians: {median[grouped] / median[plain]:.2f} of the wall time, "
        f"{cpu_median[grouped] / cpu_median[plain]:.2f} of the CPU time per step",
    ]
    records = [{"section": "length_aware_wall", "layout": name, "median_wall_s": round(median[name], 3),
                "median_cpu_s": round(cpu_median[name], 3), "steps": len(times[name])} for name in names]
    records.append({"section": "length_aware_wall", "wall_ratio": round(median[grouped] / median[plain], 3),
                    "cpu_ratio": round(cpu_median[grouped] / cpu_median[plain], 3)})
    return lines, records


def write_results(records: list[dict], path: Path = REPO / "bench" / "results" / "step_cost.jsonl") -> None:
    """Append this run's length-aware figures, stamped with the time, to bench/results/step_cost.jsonl."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(path, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({"time": stamp, **record}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=8, help="G, completions per prompt")
    parser.add_argument("--completion", type=int, default=512, help="completion tokens (max_completion_length)")
    parser.add_argument("--skip_measured", action="store_true", help="only the counted figures (no CPU runs)")
    parser.add_argument("--demo_steps", type=int, default=2, help="demo-recipe steps measured for padding")
    parser.add_argument("--wall_rounds", type=int, default=4, help="timed steps with each path")
    parser.add_argument("--vision_width", type=int, default=128, help="wall time: the vision tower's width")
    parser.add_argument("--vision_depth", type=int, default=4, help="wall time: the vision tower's blocks")
    parser.add_argument("--side", type=int, default=168, help="wall time: photo side in pixels")
    parser.add_argument("--wall_completion", type=int, default=32, help="wall time: completion tokens")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the measured runs")
    parser.add_argument("--only_length_aware", action="store_true",
                        help="of the measured sections, run only the length-aware micro-batches' two")
    args = parser.parse_args()

    processor = qwen_processor()
    grouped, records = length_aware_table(processor, args.generations, args.completion)
    sections = [
        flop_table(processor, args.generations, args.completion),
        recipe_note(processor, args.generations, args.completion),
        padding_table(processor, args.generations, args.completion),
        grouped,
    ]
    for lines in sections:
        print("\n".join(lines), end="\n\n", flush=True)
    if args.skip_measured:
        write_results(records)
        return
    import torch

    torch.set_num_threads(args.threads)  # one thread: no spin-waiting while other processes hold the cores
    if not args.only_length_aware:
        print("\n".join(demo_padding(args.demo_steps)), end="\n\n", flush=True)
    lines, measured = demo_length_padding(args.demo_steps)
    print("\n".join(lines), end="\n\n", flush=True)
    records += measured
    if not args.only_length_aware:
        print("\n".join(wall_time(args.wall_rounds, args.generations, args.vision_width, args.vision_depth,
                                  args.side, args.wall_completion)), end="\n\n", flush=True)
    lines, measured = length_wall_time(args.wall_rounds, args.generations, args.vision_width, args.vision_depth,
                                       args.side, args.wall_completion)
    print("\n".join(lines), flush=True)
    write_results(records + measured)


if __name__ == "__main__":
    main()
