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
slices batches instead of splitting files). See `grpo_rows_consumed` for resuming.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
import os
import random
import tarfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from braceexpand import braceexpand
from PIL import Image

from open_r1.answer_format import render_answer
from open_r1.data.dataset import prompt_messages
from open_r1.data.images import load_image
from open_r1.data.jsonl import DataError, Row, parse_row, split_paths

logger = logging.getLogger(__name__)

SHARD_SUFFIXES = (".tar",)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
LAT_KEYS = ("lat", "latitude")
LON_KEYS = ("lon", "lng", "longitude")
CHUNK_BYTES = 1 << 20  # a jsonl block: ~2,000 rows of a typical file
OPEN_BLOCKS = 16  # blocks read round-robin at once, so one shuffle buffer spans 16 places in the data


# ----------------------------------------------------------------------------------------------- shards


def is_shard(path: str) -> bool:
    """WebDataset shards are recognised by name: `*.tar`, possibly as a brace pattern."""
    return path.endswith(SHARD_SUFFIXES)


def expand_shards(patterns: str | Sequence[str]) -> list[str]:
    """Shard paths from local paths and brace patterns (`train-{000..099}.tar`); each must exist."""
    shards = [path for pattern in split_paths(patterns) for path in braceexpand(pattern)]
    if not shards:
        raise DataError("no WebDataset shards given")
    for path in shards:
        if not os.path.isfile(path):
            raise DataError(f"{path}: shard not found")
    return shards


@dataclass(frozen=True)
class ShardSample:
    """One WebDataset sample: its key and where each of its files lies inside the (uncompressed) tar."""

    shard: str
    key: str
    members: dict[str, tuple[str, int, int]]  # extension -> (member name, data offset, size)

    @property
    def where(self) -> str:
        return f"{self.shard}:{self.key}"

    def read(self, ext: str) -> bytes:
        _, offset, size = self.members[ext]
        with open(self.shard, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def image_ext(self) -> str | None:
        return next((ext for ext in IMAGE_EXTENSIONS if ext in self.members), None)


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset's convention: the key runs to the first dot of the file name, the rest is the extension."""
    folder, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def iter_shard_samples(shard: str) -> Iterator[ShardSample]:
    """Group a shard's files into samples by key, reading only tar headers (data is read on demand)."""
    try:
        tar = tarfile.open(shard, mode="r:")
    except tarfile.ReadError as err:
        raise DataError(f"{shard}: not an uncompressed tar shard ({err}); WebDataset shards are plain .tar") from None
    with tar:
        key, members = None, {}
        for info in tar:
            tar.members = []  # TarFile keeps every header it has read; a shard's worth is not needed
            if not info.isfile() or os.path.basename(info.name).startswith("."):
                continue
            sample_key, ext = _split_key(info.name)
            if sample_key != key and members:
                yield ShardSample(shard, key, members)
                members = {}
            key = sample_key
            members[ext] = (info.name, info.offset_data, info.size)
        if members:
            yield ShardSample(shard, key, members)


def sample_labels(meta: Any, where: str) -> dict[str, Any]:
    """lat, lon, country, region, city and id from a sample's json, accepting the usual key spellings."""
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'json': expected an object, got {type(meta).__name__}")

    def number(keys: tuple[str, ...]) -> float:
        key = next((k for k in keys if meta.get(k) not in (None, "")), None)
        if key is None:
            raise DataError(f"{where}: field '{keys[0]}': missing (looked for {', '.join(keys)})")
        try:
            value = float(meta[key])
        except (TypeError, ValueError):
            raise DataError(f"{where}: field '{key}': not a number: {meta[key]!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: field '{key}': not a finite number: {meta[key]!r}")
        return value

    labels = {"lat": number(LAT_KEYS), "lon": number(LON_KEYS)}
    for name in ("country", "region", "city", "id"):
        value = meta.get(name)
        labels[name] = str(value).strip() if value not in (None, "") else None
    return labels


# ------------------------------------------------------------------------------------------------ blocks


@dataclass(frozen=True)
class _Block:
    """A stretch of one source read in order: bytes [start, end) of a jsonl file, or a whole shard."""

    source: int
    start: int = 0
    end: int = 0
    first_line: int = 1


def _jsonl_blocks(source: int, path: str, chunk_bytes: int) -> list[_Block]:
    """Cut a jsonl file into line-aligned blocks and number their first lines (one pass over the bytes)."""
    size = os.path.getsize(path)
    blocks, start, line = [], 0, 1
    with open(path, "rb") as handle:
        while start < size:
            handle.seek(min(start + chunk_bytes, size))
            if handle.tell() < size:
                handle.readline()  # the block ends after the line that crosses its nominal end
            end = handle.tell()
            blocks.append(_Block(source, start, end, line))
            handle.seek(start)
            remaining = end - start
            while remaining:
                data = handle.read(min(remaining, 1 << 22))
                line += data.count(b"\n")
                remaining -= len(data)
            start = end
    return blocks


def _read_block(block: _Block, path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for the non-blank lines of a jsonl block; decoding waits until a row is used."""
    with open(path, "rb") as handle:
        handle.seek(block.start)
        position, number = block.start, block.first_line
        while position < block.end:
            raw = handle.readline()
            if not raw:
                break
            position += len(raw)
            if raw.strip():
                yield number, raw
            number += 1


class _NamedBytes(io.BytesIO):
    """Image bytes that print as their shard path, so decoding errors name the file like a path would."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.label = name

    def __str__(self) -> str:
        return self.label


class SharedImage(Image.Image):
    """A decoded image that deep-copies to itself.

    TRL's `repeat_iterable_dataset` deep-copies every record for each of its `num_generations *
    steps_per_generation * num_iterations` repeats: with 16 prompts x 8 generations x 2 that is 256 copies
    of each generation's images, about 0.8 GB per process at 401,408 pixels. Nothing downstream writes to
    the pixels (the processor only reads them), so the repeats share one image instead.
    """

    def __deepcopy__(self, memo: dict) -> SharedImage:
        return self


def shared(image: Image.Image) -> SharedImage:
    """`image` as a `SharedImage` (a file-backed image is first copied into memory, so nothing reads lazily)."""
    if type(image) is not Image.Image:
        image = image.copy()
    image.__class__ = SharedImage
    return image


# ------------------------------------------------------------------------------------------------ stream


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
        self.chunk_bytes = chunk_bytes
        self.open_blocks = open_blocks if shuffle else 1
        self.skipped = 0  # bad rows skipped so far (with skip_bad_rows)
        self._blocks: list[_Block] | None = None

    # -- reading

    def blocks(self) -> list[_Block]:
        if self._blocks is None:
            blocks: list[_Block] = []
            for index, source in enumerate(self.sources):
                if source.image_folder is None:
                    blocks.append(_Block(index))
                else:
                    blocks.extend(_jsonl_blocks(index, source.path, self.chunk_bytes))
            self._blocks = blocks
        return self._blocks

    def _refs(self, block: _Block) -> Iterator[tuple]:
        """Cheap references to a block's rows: the raw line, or the shard sample's offsets."""
        source = self.sources[block.source]
        if source.image_folder is None:
            for sample in iter_shard_samples(source.path):
                yield (block.source, sample)
        else:
            for number, line in _read_block(block, source.path):
                yield (block.source, number, line)

    def _epoch_refs(self, epoch: int) -> Iterator[tuple]:
        """All rows of one epoch in the order this (seed, epoch) gives; rows are still unparsed references."""
        rng = random.Random(f"{self.seed}:{epoch}")
        blocks = list(self.blocks())
        if self.shuffle:
            rng.shuffle(blocks)
        pending, active = deque(blocks), deque()
        buffer: list[tuple] = []
        while pending or active:
            while pending and len(active) < self.open_blocks:
                active.append(self._refs(pending.popleft()))
            reader = active.popleft()
            ref = next(reader, None)
            if ref is None:
                continue
            active.append(reader)
            if len(buffer) < self.shuffle_buffer:
                buffer.append(ref)
                continue
            index = rng.randrange(len(buffer))
            buffer[index], ref = ref, buffer[index]
            yield ref
        rng.shuffle(buffer)
        yield from buffer

    # -- building rows

    def _row(self, ref: tuple) -> dict[str, Any]:
        source = self.sources[ref[0]]
        if source.image_folder is None:
            row, image_files = self._shard_row(ref[1])
        else:
            _, number, line = ref
            where = f"{source.path}:{number}"
            try:
                raw = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not UTF-8 text: {err.reason} at byte {err.start}") from None
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from None
            row = parse_row(raw, where, source.image_folder, check_images=False)
            image_files = row.image_paths
        record = row.to_dict()
        record["prompt"] = prompt_messages(row, self.question_template)
        if self.decode_images:
            record["images"] = [shared(load_image(f, self.max_pixels, where=row.source)) for f in image_files]
        return record

    def _shard_row(self, sample: ShardSample) -> tuple[Row, list]:
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
        files = [_NamedBytes(sample.read(ext), image_path)] if self.decode_images else []
        return row, files

    # -- the generator

    def __call__(self) -> Iterator[dict[str, Any]]:
        position, epoch_rows = 0, None
        for epoch in itertools.count() if self.epochs is None else range(self.epochs):
            if epoch_rows and self.start_row - position >= epoch_rows:
                position += epoch_rows  # a whole epoch before the resume point: no need to read it
                continue
            start, tried, good = position, 0, 0
            for ref in self._epoch_refs(epoch):
                mine = self.world_size is None or position % self.world_size == self.rank
                position += 1
                if position <= self.start_row or not mine:
                    continue
                tried += 1
                try:
                    row = self._row(ref)
                except DataError as err:
                    if not self.skip_bad_rows:
                        raise
                    self.skipped += 1
                    logger.warning("skipping bad row %d: %s", self.skipped, err)
                    continue
                good += 1
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
