"""Read rows lazily, for sets too large to hold in memory (OSV-5M's five million rows, WebDataset shards).

Sources are jsonl files (with their image folders) and WebDataset tar shards (an image and a json per
sample). Each epoch reads them in a seeded random order, a block at a time (a ~1 MiB stretch of a jsonl
file, or one shard), with several blocks open at once and a buffer shuffle on top. So rows from all over a
sorted file mix within a batch, while memory holds only the shuffle buffer of raw lines or shard offsets:
it does not grow with the dataset. Images are read and decoded only for the rows that come out.

The order depends on (seed, epoch) alone, so every process of a run reads the same stream and a run that
restarts at row N (`start_row`) continues exactly where it stopped: skipped rows are read as raw lines and
never parsed or decoded.

With TRL's `GRPOTrainer` pass the dataset unchanged on every rank (no `rank`/`world_size`): GRPO needs
every rank to see one stream so that each prompt's group of generations stays together, and Accelerate
hands each rank its own slice of every global batch (the dataset reports a single shard, so Accelerate
slices batches instead of splitting files). Every rank therefore reads every row, but decodes only the images of
the rows it keeps (`RankRows`, passed as `decode_only`); the others carry `NotDecoded` placeholders that
Accelerate drops. `check_sample` is the bounded start-up check. See `grpo_rows_consumed` for resuming.
"""

from open_r1.data.streaming.rank_rows import NotDecoded, RankRows
from open_r1.data.streaming.shards import expand_shards, is_shard, iter_shard_samples, sample_labels
from open_r1.data.streaming.shared_images import SharedImage, shared
from open_r1.data.streaming.startup import check_sample
from open_r1.data.streaming.stream import RowStream, Source, iter_rows, resolve_sources
from open_r1.data.streaming.trl_adapter import grpo_rows_consumed, streaming_dataset

__all__ = [
    "NotDecoded",
    "RankRows",
    "RowStream",
    "SharedImage",
    "Source",
    "check_sample",
    "expand_shards",
    "grpo_rows_consumed",
    "is_shard",
    "iter_rows",
    "iter_shard_samples",
    "resolve_sources",
    "sample_labels",
    "shared",
    "streaming_dataset",
]
