"""Prefill each distinct prompt once in transformers `generate`: GRPO repeats every prompt G times.

TRL's GRPOTrainer (transformers generation, not vLLM) calls `model.generate` on a batch in which each prompt
appears num_generations times: the same input_ids row, the same attention mask and the same images. The language
model's prefill of those copies is the same work G times (13% of a 4-view 7B step). `share_prefill(model)` wraps
the `generate` of every Qwen2-VL / Qwen2.5-VL model inside `model` so that, when a batch repeats a prompt:

- identical prompts are found exactly (token, mask and mm_token_type_ids rows equal, then the same image grids
  and every pixel value equal);
- the model runs on the distinct prompts, all but their last token, filling a `DynamicCache`; the 3D rotary
  positions and `rope_deltas` come from the model's own position code, as in `generate` (through `compat`);
- the cache, the positions and `rope_deltas` are gathered back to the whole batch in its order, and transformers'
  own `generate` continues from that cache with the whole batch: it runs the last prompt token of every row (the
  logits of the first new token), then samples each row on its own, as without the wrapper.

The cached keys and values are those the plain prefill computes for the same rows, so greedy decoding gives the
same tokens and sampling the same scores (to float rounding: the batch shapes differ). A batch with no repeated
prompt, or a call the wrapper does not handle (beam search, assisted decoding, a static or quantized cache,
several return sequences, videos, caller-supplied positions or cache, per-layer outputs, right padding), runs the
plain `generate`, untouched. Under DeepSpeed ZeRO-3 or FSDP with several processes every process takes the
shared path whenever it can (also without repeats), so that all run the same sequence of module calls.

The wrapper is an instance attribute (as image_dedupe's vision forward), so checkpoints and state dicts are
unchanged; `share_prefill(model, enabled=False)` removes it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, GenerationConfig
from transformers.generation import GenerationMode

from open_r1 import compat
from open_r1.modeling.method_wrap import wrap_method

logger = logging.getLogger(__name__)

GENERATORS = ("Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration")
# the model inputs the shared path knows how to split and gather; any other one runs the plain generate
MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids")
VISUAL_INPUTS = ("pixel_values", "image_grid_thw")  # consumed by the shared prefill, not passed on
# `generate` arguments that leave the forward passes alone
PASS_THROUGH = ("logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus", "streamer",
                "tokenizer")
_ATTR = "_geo_r_shared_prefill"


@dataclass
class PrefillStats:
    """Since installation: the generate calls the shared path could take (the others are not counted), the rows
    they held, the calls that took it, and the rows it prefilled."""

    calls: int = 0
    shared_calls: int = 0
    rows_in: int = 0
    rows_prefilled: int = 0


@dataclass
class _Plan:
    unique: list[int]  # the first row of each distinct prompt, in batch order
    owner: list[int]  # for every row, the position of its prompt in `unique`
    image_rows: list[list[int]]  # for every row, its images' indices in image_grid_thw


def _bounds(grid: torch.Tensor) -> tuple[list[int], list[int]]:
    """Every image's first pixel row and number of pixel rows (t * h * w)."""
    sizes = [t * h * w for t, h, w in grid.tolist()]
    starts = [0]
    for size in sizes[:-1]:
        starts.append(starts[-1] + size)
    return starts, sizes


def _supported(model: nn.Module, args: tuple, generation_config: GenerationConfig | None,
               kwargs: dict) -> str | None:
    """Why the shared path cannot run this call (None: it can)."""
    if args:
        return "positional arguments"
    # the config `generate` will use: the caller's, the model's defaults under it, the kwargs over it
    config, rest = compat.prepare_generation_config(model, generation_config, **kwargs)
    unknown = set(rest) - set(MODEL_INPUTS) - set(PASS_THROUGH)
    if unknown:
        return f"arguments {sorted(unknown)}"
    if config.get_generation_mode() not in (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE):
        return f"generation mode {config.get_generation_mode()}"
    checks = {
        "num_return_sequences > 1": (config.num_return_sequences or 1) > 1,
        "use_cache=False": config.use_cache is False,
        "cache_implementation": config.cache_implementation is not None,
        "prefill_chunk_size": config.prefill_chunk_size is not None,
        "per-layer outputs": bool(config.output_attentions or config.output_hidden_states),
        "token healing": bool(config.token_healing),
        "classifier-free guidance": config.guidance_scale not in (None, 1, 1.0),
    }
    for name, failed in checks.items():
        if failed:
            return name
    ids, mask = rest.get("input_ids"), rest.get("attention_mask")
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] < 2:
        return "no 2D input_ids of 2 tokens or more"
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        return "no attention mask of the input_ids' shape"
    if not bool(mask[:, -1].all()):
        return "right padding"
    last = ids[:, -1]
    vision_ids = [getattr(model.config, k, None) for k in ("image_token_id", "video_token_id",
                                                           "vision_start_token_id")]
    if any(v is not None and bool((last == v).any()) for v in vision_ids):
        return "a prompt ending on a vision token"
    mm = rest.get("mm_token_type_ids")
    if mm is not None and (mm.shape != ids.shape or bool(mm[:, -1].any())):
        return "mm_token_type_ids not one per token, or a prompt ending on an image"
    if (rest.get("pixel_values") is None) != (rest.get("image_grid_thw") is None):
        return "pixel_values without image_grid_thw or the reverse"
    return None


def _image_rows(model: nn.Module, ids: torch.Tensor, grid: torch.Tensor | None) -> list[list[int]] | None:
    """Every row's images, as indices into image_grid_thw (None when the counts do not add up)."""
    if grid is None:
        return [[] for _ in range(ids.shape[0])]
    counts = compat.image_counts(model, ids).tolist()
    if sum(counts) != grid.shape[0]:
        return None
    rows, start = [], 0
    for count in counts:
        rows.append(list(range(start, start + count)))
        start += count
    return rows


def plan_prompts(model: nn.Module, inputs: dict) -> _Plan | None:
    """Which rows of the batch repeat an earlier row's prompt (exactly: tokens, mask, images); None when the
    image layout is not one the plan can split."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    grid, pixels = inputs.get("image_grid_thw"), inputs.get("pixel_values")
    image_rows = _image_rows(model, ids, grid)
    if image_rows is None:
        return None
    starts: list[int] = []
    sizes: list[int] = []
    if grid is not None:
        starts, sizes = _bounds(grid)
        if sum(sizes) != pixels.shape[0]:
            return None
    columns = [ids, mask.to(ids.dtype)]
    if inputs.get("mm_token_type_ids") is not None:
        columns.append(inputs["mm_token_type_ids"].to(ids.dtype))
    _, token_group = torch.unique(torch.cat(columns, dim=1), dim=0, return_inverse=True)

    def same_images(a: int, b: int) -> bool:
        if len(image_rows[a]) != len(image_rows[b]):
            return False
        for i, j in zip(image_rows[a], image_rows[b], strict=True):
            if sizes[i] != sizes[j] or not torch.equal(grid[i], grid[j]):
                return False
            if not torch.equal(pixels.narrow(0, starts[i], sizes[i]), pixels.narrow(0, starts[j], sizes[j])):
                return False
        return True

    unique: list[int] = []
    owner: list[int] = []
    groups: dict[int, list[int]] = {}  # token group -> positions in `unique` of its distinct prompts
    for row, group in enumerate(token_group.tolist()):
        for position in groups.get(group, []):
            if same_images(row, unique[position]):
                owner.append(position)
                break
        else:
            groups.setdefault(group, []).append(len(unique))
            owner.append(len(unique))
            unique.append(row)
    return _Plan(unique, owner, image_rows)


def _distributed_sharded(model: nn.Module) -> bool:
    """Several processes that gather parameters module by module (ZeRO-3, FSDP): they must all make the same
    calls, so the choice between the two paths may not depend on each process's batch."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    if torch.distributed.get_world_size() < 2:
        return False
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled() or any(type(m).__name__.startswith("FullyShardedDataParallel")
                                               for m in model.modules())


def _prefill_and_generate(self: nn.Module, plain, plan: _Plan, generation_config, kwargs: dict):
    """The prefill of the distinct prompts, gathered to the batch, then the plain `generate` from that cache."""
    ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
    mm = kwargs.get("mm_token_type_ids")
    grid, pixels = kwargs.get("image_grid_thw"), kwargs.get("pixel_values")
    device = ids.device
    unique = torch.tensor(plan.unique, device=device)
    owner = torch.tensor(plan.owner, device=device)
    distinct = {"input_ids": ids.index_select(0, unique), "attention_mask": mask.index_select(0, unique)}
    if mm is not None:
        distinct["mm_token_type_ids"] = mm.index_select(0, unique)
    if grid is not None:
        images = [i for row in plan.unique for i in plan.image_rows[row]]
        if images:
            starts, sizes = _bounds(grid)
            keep = torch.cat([torch.arange(starts[i], starts[i] + sizes[i]) for i in images])
            distinct["pixel_values"] = pixels.index_select(0, keep.to(pixels.device))
            distinct["image_grid_thw"] = grid.index_select(0, torch.tensor(images, device=grid.device))
    # the 3D positions of the distinct prompts as `generate` computes them (it also sets model.rope_deltas)
    position_kwargs = {k: v for k, v in distinct.items() if k != "input_ids"}
    positions = compat.generation_position_ids(self, distinct["input_ids"], position_kwargs)
    cache = DynamicCache(config=self.config.get_text_config(decoder=True))
    inputs = {"input_ids": distinct["input_ids"][:, :-1], "attention_mask": distinct["attention_mask"][:, :-1],
              "position_ids": positions[..., :-1], "past_key_values": cache, "use_cache": True}
    if "mm_token_type_ids" in distinct:
        inputs["mm_token_type_ids"] = distinct["mm_token_type_ids"][:, :-1]
    for key in VISUAL_INPUTS:
        if key in distinct:
            inputs[key] = distinct[key]
    self.model(**inputs)  # the base model: no LM head, the first new token's logits come from `generate`
    if cache.get_seq_length() != ids.shape[1] - 1:
        raise RuntimeError(f"shared prefill: the cache holds {cache.get_seq_length()} positions for "
                           f"{ids.shape[1] - 1} prompt tokens; run with --shared_prefill false")
    cache.batch_select_indices(owner)
    compat.select_rope_deltas(self, owner)
    rest = {k: v for k, v in kwargs.items() if k not in VISUAL_INPUTS}
    rest["position_ids"] = positions.index_select(1, owner.to(positions.device))
    return plain(generation_config=generation_config, past_key_values=cache, **rest)


def _shared_prefill_generate(self: nn.Module, *args, generation_config=None, **kwargs):
    """`generate`, with each distinct prompt of the batch prefilled once."""
    plain, stats = self.__dict__[_ATTR]
    if plain is None:
        plain = functools.partial(type(self).generate, self)
    reason = _supported(self, args, generation_config, kwargs)
    if reason is not None:
        logger.debug("shared prefill not used: %s", reason)
        return plain(*args, generation_config=generation_config, **kwargs)
    plan = plan_prompts(self, kwargs)
    rows = kwargs["input_ids"].shape[0]
    stats.calls += 1
    stats.rows_in += rows
    if plan is None or (len(plan.unique) == rows and not _distributed_sharded(self)):
        return plain(generation_config=generation_config, **kwargs)
    stats.shared_calls += 1
    stats.rows_prefilled += len(plan.unique)
    if stats.shared_calls == 1:
        logger.info("shared prefill: %d prompts prefilled for a generation batch of %d rows", len(plan.unique), rows)
    return _prefill_and_generate(self, plain, plan, generation_config, kwargs)


def generating_models(model: nn.Module) -> list[nn.Module]:
    """The Qwen2-VL / Qwen2.5-VL generating models inside `model` (through PEFT, DDP or DeepSpeed wrappers)."""
    return [m for m in model.modules() if type(m).__name__ in GENERATORS]


def share_prefill(model: nn.Module | None, enabled: bool = True) -> list[PrefillStats]:
    """Make `generate` of every Qwen2-VL / Qwen2.5-VL model in `model` prefill each distinct prompt of a batch
    once (`enabled=False`: restore the plain `generate`). Returns the installed wrappers' counters (empty when
    there is no such model or `enabled` is False). The method is bound to its model, so a deep copy generates
    with its own weights."""
    if model is None:
        return []
    return wrap_method(generating_models(model), "generate", _shared_prefill_generate, _ATTR, PrefillStats, enabled,
                       "prefills each distinct prompt of a generation batch once")
