"""Which rows of the stream a rank trains on, so it decodes only those images.

TRL's `GRPOTrainer` reads an iterable train set the same on every rank: `repeat_iterable_dataset` groups the
stream into generations of `rows_per_generation` rows and expands each into `repeats` copies of
(`num_generations` copies of each row), and Accelerate (`dispatch_batches=False`, one shard) cuts that record
stream into global batches of `rank_batch * world_size` records, of which rank `p` keeps records
[p * rank_batch, (p + 1) * rank_batch). `RankRows` replays that arithmetic on the rows' positions; the other
ranks' rows still come out (so every rank's stream stays aligned) but with `NotDecoded` placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class NotDecoded:
    """Stands in for an image another rank decodes; it must never reach a processor."""

    def __init__(self, path: str):
        self.path = path

    def __deepcopy__(self, memo: dict) -> NotDecoded:
        return self

    def __repr__(self) -> str:
        return f"NotDecoded({self.path!r}: this row belongs to another rank)"


@dataclass
class RankRows:
    """`rank`'s share of the stream's rows, by position among the rows the stream yields (0 = first yielded)."""

    rows_per_generation: int  # generation_batch_size // num_generations
    num_generations: int
    repeats: int  # num_iterations * steps_per_generation
    rank_batch: int  # the dataloader's batch: per-device batch * steps_per_generation
    world_size: int
    rank: int
    _kept: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size or min(self.rows_per_generation, self.num_generations,
                                                        self.repeats, self.rank_batch) < 1:
            raise ValueError(f"invalid rank layout: {self}")

    def _kept_rows(self, generation: int) -> frozenset[int]:
        global_batch = self.rank_batch * self.world_size
        per_generation = self.repeats * self.rows_per_generation * self.num_generations
        offset = generation * per_generation % global_batch  # the pattern repeats with this offset
        if offset not in self._kept:
            first, last = self.rank * self.rank_batch, (self.rank + 1) * self.rank_batch
            kept = {
                (record // self.num_generations) % self.rows_per_generation
                for record in range(per_generation)
                if first <= (offset + record) % global_batch < last
            }
            self._kept[offset] = frozenset(kept)
        return self._kept[offset]

    def __call__(self, position: int) -> bool:
        return position % self.rows_per_generation in self._kept_rows(position // self.rows_per_generation)

    @classmethod
    def for_grpo(cls, args: Any) -> RankRows | None:
        """The layout of a `GRPOConfig` (after its own checks), or None when every rank keeps every row (one
        process) or Accelerate slices batches in a way this does not replay (`split_batches`)."""
        config = args.accelerator_config
        split = config.get("split_batches") if isinstance(config, dict) else getattr(config, "split_batches", False)
        if args.world_size <= 1 or split:
            return None
        return cls(
            rows_per_generation=args.generation_batch_size // args.num_generations,
            num_generations=args.num_generations,
            repeats=args.num_iterations * args.steps_per_generation,
            rank_batch=args.train_batch_size * args.steps_per_generation,
            world_size=args.world_size,
            rank=args.process_index,
        )
