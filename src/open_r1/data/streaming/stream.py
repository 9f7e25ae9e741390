"""The shuffled row stream: sources read a block at a time in a seeded order, a shuffle buffer on top, rows
parsed and images decoded only when they come out; a restart at row N continues exactly there."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from open_r1.answer import render_answer
from open_r1.data.dataset import prompt_messages
from open_r1.data.images import load_image
from open_r1.data.jsonl import parse_row, split_paths
from open_r1.data.rows import DataError, Row
from open_r1.data.sampling import RowSampling, RowWeights, StreamWeights, describe_counts
from open_r1.data.streaming.blocks import CHUNK_BYTES, Block, jsonl_blocks, read_block
from open_r1.data.streaming.rank_rows import NotDecoded
from open_r1.data.streaming.shards import (
    IMAGE_EXTENSIONS,
    NamedBytes,
    ShardSample,
    expand_shards,
    is_shard,
    iter_shard_samples,
    sample_labels,
)
from open_r1.data.streaming.shared_images import shared

logger = logging.getLogger(__name__)

T = TypeVar("T")
OPEN_BLOCKS = 16  # blocks read round-robin at once, so one shuffle buffer spans 16 places in the data


@dataclass(frozen=True)
class Source:
    """A jsonl file with its image folder, or a WebDataset shard (folder None)."""

    path: str
    image_folder: str | None = None


def resolve_sources(
    data_file_paths: str | Sequence[str], image_folders: str | Sequence[str] | None = None
) -> list[Source]:
    """Pair jsonl files with image folders by position (one folder may serve all); `.tar` entries and brace
    patterns are WebDataset shards, whose folder position is ignored."""
    entries = split_paths(data_file_paths)
    folders = split_paths(image_folders)
    if not entries:
        raise DataError("--data_file_paths is empty: give jsonl files and/or .tar shards separated by ':'")
    if len(folders) == 1:
        folders = folders * len(entries)
    needs_folders = any(not is_shard(e) for e in entries)
    if needs_folders and len(folders) != len(entries):
        raise DataError(
            f"--data_file_paths lists {len(entries)} entries but --image_folders lists {len(folders)} folders; "
            f"they are paired by position (a shard's folder is ignored), or give a single folder for all"
        )
    sources: list[Source] = []
    for index, entry in enumerate(entries):
        if is_shard(entry):
            sources.extend(Source(path) for path in expand_shards(entry))
            continue
        folder = folders[index]
        if not os.path.isfile(entry):
            raise DataError(f"{entry}: data file not found")
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: image folder not found")
        sources.append(Source(entry, folder))
    return sources


def buffer_shuffled(items: Iterable[T], size: int, rng: random.Random) -> Iterator[T]:
    """`items` through a shuffle buffer of `size`: memory holds `size` items, and the order depends on `rng`'s
    seed alone, so a stream restarted with the same seed comes out the same."""
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        index = rng.randrange(len(buffer))
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class RowStream:
    """A picklable generator function over the rows of `sources`: shuffled per epoch, resumable, decoded.

    Positions count rows of the whole (multi-epoch) stream before `rank`/`world_size` splitting, so
    `start_row` means the same thing on every process.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        question_template: str | None = None,
        max_pixels: int | None = None,
        decode_images: bool = True,
        shuffle: bool = True,
        shuffle_buffer: int = 10_000,
        seed: int = 0,
        epochs: int | None = 1,
        start_row: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        skip_bad_rows: bool = False,
        chunk_bytes: int = CHUNK_BYTES,
        open_blocks: int = OPEN_BLOCKS,
        allow_absolute_image_paths: bool = False,
        decode_only: Callable[[int], bool] | None = None,
        sampling: RowSampling | None = None,
    ):
        if (rank is None) != (world_size is None) or (world_size is not None and not 0 <= rank < world_size):
            raise ValueError(f"rank and world_size go together, with 0 <= rank < world_size (got {rank}, {world_size})")
        self.sources = list(sources)
        self.question_template = question_template
        self.max_pixels = max_pixels
        self.decode_images = decode_images
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, shuffle_buffer) if shuffle else 1
        self.seed = seed
        self.epochs = epochs
        self.start_row = start_row
        self.rank, self.world_size = rank, world_size
        self.skip_bad_rows = skip_bad_rows
        self.allow_absolute_image_paths = allow_absolute_image_paths  # jsonl rows, as in load_rows
        self.chunk_bytes = chunk_bytes
        self.open_blocks = open_blocks if shuffle else 1
        # which yielded rows (0 = the first this generator yields) get decoded images; the others carry
        # `NotDecoded` placeholders: a rank's share of a stream every rank reads (see `RankRows`)
        self.decode_only = decode_only
        self.skipped = 0  # bad rows skipped so far (with skip_bad_rows)
        # geo-balanced / difficulty-weighted: each row comes out a seeded number of times around its expected count
        self.sampling = sampling if sampling is not None and sampling.active else None
        self._weights: StreamWeights | None = None
        self._blocks: list[Block] | None = None

    # -- reading

    def blocks(self) -> list[Block]:
        if self._blocks is None:
            blocks: list[Block] = []
            for index, source in enumerate(self.sources):
                if source.image_folder is None:
                    blocks.append(Block(index))
                else:
                    blocks.extend(jsonl_blocks(index, source.path, self.chunk_bytes))
            self._blocks = blocks
        return self._blocks

    def _refs(self, block: Block) -> Iterator[tuple]:
        """Cheap references to a block's rows: the raw line, or the shard sample's offsets."""
        source = self.sources[block.source]
        if source.image_folder is None:
            for sample in iter_shard_samples(source.path):
                yield (block.source, sample)
        else:
            for number, line in read_block(block, source.path):
                yield (block.source, number, line)

    def stream_weights(self) -> StreamWeights:
        """The sampling weights, from two passes over every row's labels (no images) the first time: group sizes,
        then the total weight; memory holds the group counts only."""
        if self._weights is None:
            def rows() -> Iterator[Row]:
                return (self._parse(ref, False)[0] for block in self.blocks() for ref in self._refs(block))

            weights = RowWeights.fit(self.sampling, rows())
            count, total = 0, 0.0
            for row in rows():
                count, total = count + 1, total + weights(row)
            self._weights = StreamWeights(weights, count, total)
            if self.sampling.balance_by is not None:
                logger.info("--balance_by %s --balance_alpha %g over the stream's %d rows: %s", self.sampling.balance_by,
                            self.sampling.alpha, count, describe_counts(weights.counts, self.sampling.alpha))
        return self._weights

    def _weighted(self, reader: Iterator[tuple], rng: random.Random) -> Iterator[tuple]:
        """Each reference of `reader` as many times as its sampling weight draws (once without sampling)."""
        if self.sampling is None:
            yield from reader
            return
        weights = self.stream_weights()
        for ref in reader:
            for _ in range(weights.copies(self._parse(ref, False)[0], rng)):
                yield ref

    def _epoch_refs(self, epoch: int) -> Iterator[tuple]:
        """All rows of one epoch in the order this (seed, epoch) gives; rows are still unparsed references."""
        rng = random.Random(f"{self.seed}:{epoch}")
        blocks = list(self.blocks())
        if self.shuffle:
            rng.shuffle(blocks)
        pending, active = deque(blocks), deque()

        def round_robin() -> Iterator[tuple]:
            while pending or active:
                while pending and len(active) < self.open_blocks:
                    active.append(self._weighted(self._refs(pending.popleft()), rng))
                reader = active.popleft()
                ref = next(reader, None)
                if ref is not None:
                    active.append(reader)
                    yield ref

        yield from buffer_shuffled(round_robin(), self.shuffle_buffer, rng)

    # -- building rows

    def _parse(self, ref: tuple, decode: bool = True) -> tuple[Row, list]:
        """The row a reference points to, and its image files (read only with `decode`, for shards)."""
        source = self.sources[ref[0]]
        if source.image_folder is None:
            return self._shard_row(ref[1], decode)
        _, number, line = ref
        where = f"{source.path}:{number}"
        try:
            raw = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: not UTF-8 text: {err.reason} at byte {err.start}") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from None
        row = parse_row(raw, where, source.image_folder, False, self.allow_absolute_image_paths)
        return row, row.image_paths

    def _row(self, ref: tuple, decode: bool = True) -> dict[str, Any]:
        row, image_files = self._parse(ref, decode)
        record = row.to_dict()
        record["prompt"] = prompt_messages(row, self.question_template)
        if self.decode_images and not decode:
            record["images"] = [NotDecoded(path) for path in row.image_paths]
        elif self.decode_images:
            record["images"] = [shared(load_image(f, self.max_pixels, where=row.source)) for f in image_files]
        return record

    def _shard_row(self, sample: ShardSample, decode: bool = True) -> tuple[Row, list]:
        ext = sample.image_ext()
        if ext is None:
            raise DataError(f"{sample.where}: field 'image': the sample has no {'/'.join(IMAGE_EXTENSIONS)} file")
        if "json" not in sample.members:
            raise DataError(f"{sample.where}: field 'json': the sample has no json file")
        try:
            meta = json.loads(sample.read("json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{sample.where}: field 'json': invalid JSON: {err}") from None
        labels = sample_labels(meta, sample.where)
        for key, limit in (("lat", 90.0), ("lon", 180.0)):
            if abs(labels[key]) > limit:
                raise DataError(f"{sample.where}: field '{key}': {labels[key]} is outside [-{limit}, {limit}]")
        image_path = f"{sample.shard}#{sample.members[ext][0]}"
        row = Row(
            id=labels["id"] or sample.key,
            image_paths=[image_path],
            question="",
            solution=render_answer(labels["lat"], labels["lon"], labels["country"], labels["region"], labels["city"]),
            lat=labels["lat"],
            lon=labels["lon"],
            country=labels["country"],
            region=labels["region"],
            city=labels["city"],
            source=sample.where,
        )
        files = [NamedBytes(sample.read(ext), image_path)] if self.decode_images and decode else []
        return row, files

    # -- the generator

    def __call__(self) -> Iterator[dict[str, Any]]:
        position, epoch_rows, yielded = 0, None, 0
        for epoch in itertools.count() if self.epochs is None else range(self.epochs):
            # a whole epoch before the resume point need not be read, when epochs have one length (weighted
            # sampling draws each epoch's length)
            if epoch_rows and self.sampling is None and self.start_row - position >= epoch_rows:
                position += epoch_rows  # a whole epoch before the resume point: no need to read it
                continue
            start, tried, good = position, 0, 0
            for ref in self._epoch_refs(epoch):
                mine = self.world_size is None or position % self.world_size == self.rank
                position += 1
                if position <= self.start_row or not mine:
                    continue
                tried += 1
                decode = self.decode_only is None or self.decode_only(yielded)
                try:
                    row = self._row(ref, decode)
                except DataError as err:
                    # a row only this rank decodes cannot be skipped: the other ranks would not know
                    if not self.skip_bad_rows or self.decode_only is not None:
                        raise
                    self.skipped += 1
                    logger.warning("skipping bad row %d: %s", self.skipped, err)
                    continue
                good += 1
                yielded += 1
                yield row
            epoch_rows = position - start
            if epoch_rows == 0:
                raise DataError(f"no rows in {[s.path for s in self.sources]}")
            if tried and not good:
                raise DataError(f"every row of epoch {epoch} was bad ({tried} skipped); see the warnings above")


def iter_rows(
    data_file_paths: str | Sequence[str], image_folders: str | Sequence[str] | None = None, **options: Any
) -> Iterator[dict[str, Any]]:
    """Rows one at a time, for loops that need no HF dataset (evaluation, benchmarks); see `RowStream`."""
    return RowStream(resolve_sources(data_file_paths, image_folders), **options)()
