"""The row stream as TRL's `GRPOTrainer` takes it: an HF `IterableDataset`, and the row a resumed run restarts at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_r1.data.streaming.stream import RowStream, resolve_sources


def streaming_dataset(
    data_file_paths: str | Sequence[str], image_folders: str | Sequence[str] | None = None, **options: Any
):
    """An HF `IterableDataset` with the columns of `rows_to_dataset` + `with_images` (`prompt`, `images`,
    labels, `solution`, `id`, `source`, `image_paths`, `question`), read lazily; options as `RowStream`.

    For GRPO training set `epochs=None` (the stream repeats, reshuffled each epoch, until `max_steps`), leave
    `rank`/`world_size` unset, and set `GRPOConfig.shuffle_dataset=False`: the stream is shuffled already,
    and TRL's own shuffle would hold 1,000 decoded rows (about 1.2 GB at 401,408 pixels) and break exact
    resumption.
    """
    from datasets import IterableDataset

    return IterableDataset.from_generator(RowStream(resolve_sources(data_file_paths, image_folders), **options))


def grpo_rows_consumed(global_step: int, args: Any) -> int:
    """Rows of the stream a `GRPOTrainer` has used after `global_step` optimizer steps: the `start_row` that
    resumes a run where it stopped.

    TRL reads `generation_batch_size / num_generations` new rows per generation and generates once every
    `steps_per_generation * num_iterations` micro-steps; a generation cut short by the restart counts as used.
    """
    micro_steps = global_step * args.gradient_accumulation_steps
    generations = -(-micro_steps // (args.steps_per_generation * args.num_iterations))
    return generations * (args.generation_batch_size // args.num_generations)
