"""Encode each distinct image once per forward: GRPO repeats every prompt G times, and with it its images.

TRL's GRPOTrainer feeds a batch of G completions per prompt to the model, each carrying its own copy of the
prompt's `pixel_values`, so the vision tower encodes every photo G times: in transformers' `generate` (prefill)
and in each log-prob pass (policy, old policy, reference model). `encode_images_once(model)` wraps the `forward` of
every Qwen2-VL / Qwen2.5-VL vision tower inside `model` (the smallest layer that sees whole images) so that:

- the batch's images are split by `grid_thw` (one (t, h, w) row per image, t*h*w pixel rows each);
- identical images are found exactly: same grid, same sampled pixel values (a fingerprint read without
  arithmetic), then every candidate compared element by element with its representative;
- the tower runs on the distinct images only, and its outputs (`pooler_output`, the merged tokens the language
  model reads, and `last_hidden_state`) are gathered back into the batch's order with `index_select`.

The gather's backward adds the gradients of all copies into their image's features before the tower's backward,
which is the gradient of the plain path (the same sum, in another order), so training is unchanged. A batch with
no repeated image runs the plain forward, untouched. Calls that ask for per-layer outputs or pass precomputed
vision positions run the plain forward as well.

The wrapper is an instance attribute (as TRL's own fused LM head), so the checkpoint, the state dict, PEFT,
DeepSpeed ZeRO-3 and `generate` see the same modules; `encode_images_once(model, enabled=False)` removes it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
from torch import nn

from open_r1.modeling.method_wrap import wrap_method

logger = logging.getLogger(__name__)

# vision towers whose forward is (pixel rows, grid_thw) -> per-image blocks of rows, in image order
VISION_TOWERS = ("Qwen2_5_VisionTransformerPretrainedModel", "Qwen2VisionTransformerPretrainedModel")
# caller-supplied per-image precomputations (transformers.vision_utils) and per-layer outputs: plain forward
PLAIN_FORWARD_KWARGS = (
    "cu_seqlens",
    "position_ids",
    "window_index",
    "cu_window_seqlens",
    "output_hidden_states",
    "output_attentions",
)
FINGERPRINT_SAMPLES = 64  # pixel values read per image to find candidate duplicates (then compared in full)
_ATTR = "_geo_r_image_dedupe"


@dataclass
class DedupeStats:
    """Images the tower was asked to encode and images it encoded, over all calls since installation."""

    calls: int = 0
    images_in: int = 0
    images_encoded: int = 0
    rows_in: int = 0
    rows_encoded: int = 0


@dataclass
class _Plan:
    unique: list[int]  # index of each distinct image's first occurrence, in batch order
    owner: list[int]  # for every image, the position of its distinct image in `unique`
    starts: list[int]  # every image's first pixel row
    sizes: list[int]  # every image's number of pixel rows (t * h * w)


def _image_bounds(grid: list[list[int]]) -> tuple[list[int], list[int]]:
    sizes = [t * h * w for t, h, w in grid]
    starts = [0]
    for size in sizes[:-1]:
        starts.append(starts[-1] + size)
    return starts, sizes


def _fingerprints(pixels: torch.Tensor, starts: list[int], sizes: list[int]) -> list[bytes]:
    """A few pixel values of every image, read (never summed, so copies give the same bytes) at evenly spread
    positions; one small device-to-host copy for the batch."""
    width = pixels.shape[-1] if pixels.dim() > 1 else 1
    flat = pixels.reshape(-1)
    index = []
    for start, size in zip(starts, sizes, strict=True):
        length = size * width
        samples = min(FINGERPRINT_SAMPLES, length)
        step = torch.arange(samples, dtype=torch.long)
        index.append(start * width + (step * (length - 1)) // max(samples - 1, 1))
    if len({len(i) for i in index}) > 1:  # images too small for FINGERPRINT_SAMPLES values: pad with the first
        longest = max(len(i) for i in index)
        index = [torch.cat([i, i[:1].expand(longest - len(i))]) for i in index]
    index = torch.stack(index)
    sampled = flat.index_select(0, index.reshape(-1).to(flat.device)).detach().cpu().reshape(index.shape)
    raw = sampled.contiguous().view(torch.uint8).numpy()
    return [row.tobytes() for row in raw]


def plan_dedupe(pixels: torch.Tensor, grid_thw: torch.Tensor) -> _Plan | None:
    """Which images of the batch are copies of an earlier one (exactly: same grid, every value equal); None when
    all are distinct."""
    grid = [list(map(int, g)) for g in grid_thw.tolist()]
    if len(grid) < 2:
        return None
    starts, sizes = _image_bounds(grid)
    if sum(sizes) != pixels.shape[0]:
        return None  # not one row per patch: leave it to the model to complain
    prints = _fingerprints(pixels, starts, sizes)
    buckets: dict[tuple, list[int]] = {}  # (grid, fingerprint) -> positions in `unique` of images with that key
    unique: list[int] = []
    owner: list[int] = []
    candidates: list[tuple[int, int]] = []  # (image, position in `unique` of the image it should equal)
    for i, key in enumerate(zip(map(tuple, grid), prints, strict=True)):
        bucket = buckets.get(key)
        if bucket:
            candidates.append((i, bucket[0]))
            owner.append(-1)  # settled after the exact comparison
        else:
            buckets[key] = [len(unique)]
            owner.append(len(unique))
            unique.append(i)
    if not candidates:
        return None
    # one device-to-host copy for all the comparisons
    equal = torch.stack([_same_rows(pixels, starts, sizes, i, unique[u]) for i, u in candidates]).tolist()
    for (i, u), same in zip(candidates, equal, strict=True):
        if same:
            owner[i] = u
            continue
        # a fingerprint collision: compare with the bucket's other distinct images, else it is a new one
        key = (tuple(grid[i]), prints[i])
        for other in buckets[key][1:]:
            if bool(_same_rows(pixels, starts, sizes, i, unique[other])):
                owner[i] = other
                break
        else:
            buckets[key].append(len(unique))
            owner[i] = len(unique)
            unique.append(i)
    if len(unique) == len(grid):
        return None
    # `unique` must be in batch order for the gather below to be a plain concatenation
    order = sorted(range(len(unique)), key=lambda u: unique[u])
    rank = {u: r for r, u in enumerate(order)}
    return _Plan([unique[u] for u in order], [rank[o] for o in owner], starts, sizes)


def _same_rows(pixels: torch.Tensor, starts: list[int], sizes: list[int], a: int, b: int) -> torch.Tensor:
    rows_a = pixels.narrow(0, starts[a], sizes[a])
    rows_b = pixels.narrow(0, starts[b], sizes[b])
    return (rows_a == rows_b).all()


def _gather_index(plan: _Plan, per_row: int, device: torch.device) -> torch.Tensor:
    """Rows of the distinct images' output (laid out image after image, `sizes[i] // per_row` rows each) that
    rebuild the whole batch's output."""
    unique_sizes = [plan.sizes[i] // per_row for i in plan.unique]
    unique_starts = [0]
    for size in unique_sizes[:-1]:
        unique_starts.append(unique_starts[-1] + size)
    pieces = [torch.arange(unique_starts[u], unique_starts[u] + unique_sizes[u]) for u in plan.owner]
    return torch.cat(pieces).to(device)


def _expand(output, plan: _Plan, merge_unit: int):
    """The tower's output for the distinct images -> its output for the whole batch (pixel-row tensors and
    merged-token tensors are told apart by their length)."""
    rows = sum(plan.sizes[i] for i in plan.unique)
    cache: dict[int, torch.Tensor] = {}

    def expand(value):
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        for per_row in (1, merge_unit):
            if value.shape[0] == rows // per_row:
                if per_row not in cache:
                    cache[per_row] = _gather_index(plan, per_row, value.device)
                return value.index_select(0, cache[per_row])
        raise RuntimeError(
            f"image dedupe: the vision tower returned a tensor of {value.shape[0]} rows for {rows} pixel rows; "
            "run with --dedupe_images false"
        )

    if isinstance(output, torch.Tensor):
        return expand(output)
    if isinstance(output, tuple) and not hasattr(output, "keys"):
        return type(output)(expand(v) for v in output)
    for key in list(output.keys()):  # a ModelOutput
        output[key] = expand(output[key])
    return output


def _deduped_forward(self: nn.Module, hidden_states, grid_thw=None, *args, **kwargs):
    """The vision tower's forward on the distinct images of the batch, gathered back into the batch."""
    plain, stats = self.__dict__[_ATTR]
    if plain is None:
        plain = functools.partial(type(self).forward, self)
    if grid_thw is None or args or any(kwargs.get(k) not in (None, False) for k in PLAIN_FORWARD_KWARGS):
        return plain(hidden_states, grid_thw, *args, **kwargs)
    plan = plan_dedupe(hidden_states, grid_thw)
    stats.calls += 1
    stats.images_in += grid_thw.shape[0]
    stats.rows_in += hidden_states.shape[0]
    if plan is None:
        stats.images_encoded += grid_thw.shape[0]
        stats.rows_encoded += hidden_states.shape[0]
        return plain(hidden_states, grid_thw=grid_thw, **kwargs)
    keep = torch.cat([torch.arange(plan.starts[i], plan.starts[i] + plan.sizes[i]) for i in plan.unique])
    unique_pixels = hidden_states.index_select(0, keep.to(hidden_states.device))
    unique_grid = grid_thw.index_select(0, torch.tensor(plan.unique, device=grid_thw.device))
    stats.images_encoded += len(plan.unique)
    stats.rows_encoded += unique_pixels.shape[0]
    output = plain(unique_pixels, grid_thw=unique_grid, **kwargs)
    merge_unit = int(getattr(self, "spatial_merge_size", 2)) ** 2
    return _expand(output, plan, merge_unit)


def vision_towers(model: nn.Module) -> list[nn.Module]:
    """The Qwen2-VL / Qwen2.5-VL vision towers inside `model` (through PEFT, DDP or DeepSpeed wrappers)."""
    return [m for m in model.modules() if type(m).__name__ in VISION_TOWERS]


def encode_images_once(model: nn.Module | None, enabled: bool = True) -> list[DedupeStats]:
    """Make every vision tower in `model` encode each distinct image of a batch once (`enabled=False`: restore
    the plain forward). Returns the installed towers' counters (empty when there is no such tower or `enabled`
    is False).

    The forward is bound to its tower (`types.MethodType`, as TRL binds its fused LM head), so a deep copy of the
    model (TRL's reference model, for one) dedupes with its own weights."""
    if model is None:
        return []
    return wrap_method(vision_towers(model), "forward", _deduped_forward, _ATTR, DedupeStats, enabled,
                       "encodes each distinct image of a batch once")
