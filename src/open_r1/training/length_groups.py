"""Length-aware micro-batches for GRPO: the rows of a generation batch share a micro-batch with rows of similar
length, and each micro-batch is cut to its own longest row.

TRL 1.16 pads a generation batch to its longest prompt and longest completion, shuffles its rows and cuts it into
`steps_per_generation` micro-batches of that one width, so in geo-r's batches (1-photo prompts of ~580 tokens
beside 4-view prompts of ~2,070) most micro-batches carry a long prompt's width and a third of the policy pass is
padding. Here the rows are sorted by (prompt tokens, completion tokens), cut into micro-batches of the same size
as TRL's, the micro-batches' order is shuffled with the step's seed, and each drops the columns that are padding
in all its rows (left-padded prompt columns, right-padded completion columns).

Exact where the loss does not depend on which rows share a micro-batch (each micro-batch still has
`per_device_train_batch_size` rows), tested for: `dapo` (divides by the generation batch's token count), `grpo`
(per-row means averaged over equal-sized micro-batches) and `dr_grpo` (a constant denominator). `bnpo` divides
each micro-batch by its own token count, so grouping changes the gradient: it keeps TRL's layout. So do the loss
types no recipe uses (cispo, sapo and luspo normalise like dapo or grpo but are untested here; vespo's weights
read every column of the vLLM ratios) and runs with an entropy bonus or top-entropy masking (per-micro-batch
statistics) or a MoE auxiliary loss, and runs whose generation batch spans several optimizer steps
(`steps_per_generation` above `gradient_accumulation_steps`). Logs `padding/policy` (the padded share of the policy pass's tokens) beside
`padding/policy_plain` (that share in TRL's micro-batches).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from open_r1 import compat

logger = logging.getLogger(__name__)

EXACT_LOSS_TYPES = ("dapo", "grpo", "dr_grpo")  # tested equal to the plain path (tests/test_length_groups.py)
PADDING_METRICS = ("padding/policy_plain", "padding/policy")  # padded share of the policy pass's tokens
PROMPT_KEYS = ("prompt_ids", "prompt_mask")
COMPLETION_KEYS = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                   "sampling_per_token_logps", "tool_mask", "importance_sampling_ratio")
SEQUENCE_KEYS = ("token_type_ids", "mm_token_type_ids")  # prompt then completion columns
_MARKER = "_open_r1_length_groups"


def why_plain(trainer: GRPOTrainer) -> str | None:
    """Why this trainer's loss would change if its rows were regrouped (None: regrouping is exact)."""
    args = trainer.args
    if trainer.loss_type not in EXACT_LOSS_TYPES:
        return f"loss_type {trainer.loss_type} normalises each micro-batch by its own token count"
    if args.steps_per_generation > args.gradient_accumulation_steps:
        return "a generation batch spans several optimizer steps, and grouping would choose which rows share one"
    if args.entropy_coef != 0.0 or args.use_adaptive_entropy:
        return "the entropy bonus is a mean over each micro-batch's tokens"
    if args.top_entropy_quantile < 1.0:
        return "top_entropy_quantile masks by a quantile of each micro-batch's entropies"
    if compat.adds_aux_loss(trainer):
        return "the MoE auxiliary loss is a mean over each micro-batch"
    return None


def padded_share(micro_batches: Sequence[dict[str, Any]]) -> float:
    """The share of the policy pass's token positions (rows x prompt+completion columns) that are padding."""
    slots = sum(b["prompt_mask"].numel() + b["completion_mask"].numel() for b in micro_batches)
    real = sum(int(b["prompt_mask"].sum() + b["completion_mask"].sum()) for b in micro_batches)
    return 1 - real / max(1, slots)


def row_lengths(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt tokens, completion columns up to the last real token) of each row."""
    prompt = batch["prompt_mask"].sum(1)
    mask = batch["completion_mask"]
    columns = torch.arange(1, mask.size(1) + 1, device=mask.device)
    completion = (mask.bool() * columns).amax(1) if mask.size(1) else mask.sum(1)
    return prompt.cpu(), completion.cpu()


def _take(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """The rows `rows` of a batch whose image tensors are split by row (scalars kept)."""
    index = torch.tensor(rows, dtype=torch.long)
    out = {}
    for key, value in batch.items():
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            out[key] = value
        elif isinstance(value, torch.Tensor):
            out[key] = value.index_select(0, index.to(value.device))
        else:
            out[key] = [value[i] for i in rows]
    return out


def _round_up(width: int, multiple: int | None, limit: int) -> int:
    return min(limit, -(-width // multiple) * multiple) if multiple else width


def trim(batch: dict[str, Any], pad_to_multiple_of: int | None = None) -> dict[str, Any]:
    """Drop the prompt columns that are padding in every row (on the left) and the completion columns after every
    row's last token (at least one kept, so the log-prob slice stays non-empty)."""
    width_p, width_c = batch["prompt_ids"].size(1), batch["completion_ids"].size(1)
    used = batch["prompt_mask"].bool().any(0).nonzero()
    keep_p = _round_up(width_p - int(used.min()) if len(used) else 0, pad_to_multiple_of, width_p)
    _, completion = row_lengths(batch)
    keep_c = _round_up(max(1, int(completion.max())), pad_to_multiple_of, width_c)
    out = dict(batch)
    for key in PROMPT_KEYS:
        out[key] = batch[key][:, width_p - keep_p:]
    for key in COMPLETION_KEYS:
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == 2 and value.size(1) == width_c:
            out[key] = value[:, :keep_c]
    for key in SEQUENCE_KEYS:
        value = batch.get(key)
        if isinstance(value, torch.Tensor) and value.ndim == 2 and value.size(1) == width_p + width_c:
            out[key] = value[:, width_p - keep_p:width_p + keep_c]
    return out


def merge(micro_batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The micro-batches of one generation batch back in one batch, image tensors split by row."""
    first = micro_batches[0]
    split = [compat.split_pixel_values_by_rows(b) for b in micro_batches]
    out = {}
    for key, value in first.items():
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            out[key] = value
        elif isinstance(split[0][key], torch.Tensor):
            out[key] = torch.cat([b[key] for b in split], dim=0)
        else:
            out[key] = [row for b in split for row in b[key]]
    return out


def regroup(micro_batches: Sequence[dict[str, Any]], generator: torch.Generator,
            pad_to_multiple_of: int | None = None) -> list[dict[str, Any]]:
    """The rows of `micro_batches` (one generation batch as TRL buffered it) sorted by (prompt, completion)
    length, cut into as many micro-batches of the same size, those in an order drawn from `generator`, each cut
    to its longest row."""
    if any(b.get(key) is None for b in micro_batches for key in (*PROMPT_KEYS, "completion_ids", "completion_mask")):
        return list(micro_batches)
    batch = merge(micro_batches)
    prompt, completion = row_lengths(batch)
    order = sorted(range(len(prompt)), key=lambda i: (int(prompt[i]), int(completion[i]), i))
    size = len(order) // len(micro_batches)
    chunks = [order[i * size:(i + 1) * size] for i in range(len(micro_batches))]
    shuffled = torch.randperm(len(chunks), generator=generator).tolist()
    return [trim(compat.merge_pixel_values_rows(_take(batch, chunks[i])), pad_to_multiple_of) for i in shuffled]


def group_by_length(trainer: GRPOTrainer, enabled: bool = True) -> bool:
    """Regroup each generation batch of `trainer` into length-aware micro-batches where that leaves its loss and
    gradient unchanged (see the module's note); True when installed. `enabled=False` removes the regrouping."""
    if not enabled:
        compat.wrap_prepare_inputs(trainer, lambda batches: batches, _MARKER, enabled=False)
        return False
    reason = why_plain(trainer)
    if reason is not None:
        logger.info("length-aware micro-batches off: %s (TRL's shuffled micro-batches kept)", reason)
        return False

    def regroup_step(micro_batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seed = (trainer.args.seed * 1_000_003 + trainer.state.global_step) % 2**63
        groups = regroup(micro_batches, torch.Generator().manual_seed(seed), trainer.pad_to_multiple_of)
        metrics = compat.trainer_metrics(trainer)["train"]
        for name, batches in zip(PADDING_METRICS, (micro_batches, groups), strict=True):
            metrics[name].append(padded_share(batches))
        return groups

    compat.wrap_prepare_inputs(trainer, regroup_step, _MARKER)
    logger.info("length-aware micro-batches: each of the %d micro-batches of a generation batch holds rows of "
                "similar length, cut to its longest", trainer.args.steps_per_generation)
    return True
