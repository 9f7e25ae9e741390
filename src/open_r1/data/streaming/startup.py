"""The bounded start-up check of a streamed data set: the first rows of every jsonl file and a seeded random
sample of the rest are parsed with their images looked up, so a wrong image folder or a broken file stops
the run at once with file:line; every other row is checked as the stream reaches it (its structure on every
rank, its images by the rank that decodes them). The cost does not grow with the number of rows beyond the
one pass over the bytes that numbers the blocks' lines, which the stream makes anyway."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from open_r1.data.jsonl import parse_row
from open_r1.data.rows import DataError
from open_r1.data.streaming.blocks import CHUNK_BYTES, jsonl_blocks, read_block
from open_r1.data.streaming.stream import Source

FIRST_ROWS = 100  # of every jsonl file
RANDOM_ROWS = 200  # over all files, one per randomly chosen block


def _check_line(source: Source, number: int, line: bytes, allow_absolute: bool) -> None:
    where = f"{source.path}:{number}"
    try:
        raw = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{where}: invalid JSON or not UTF-8 text: {err}") from None
    parse_row(raw, where, source.image_folder, True, allow_absolute)


def check_sample(
    sources: Sequence[Source],
    first_rows: int = FIRST_ROWS,
    random_rows: int = RANDOM_ROWS,
    seed: int = 0,
    allow_absolute_image_paths: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Parse the sampled rows of the jsonl `sources` (shards carry their images and are left to the stream)
    and stat their images; raise the first DataError (file:line: field: problem). Returns rows checked."""
    rng = random.Random(f"startup:{seed}")
    checked = 0
    blocks = []
    for index, source in enumerate(sources):
        if source.image_folder is None:
            continue
        source_blocks = jsonl_blocks(index, source.path, chunk_bytes)
        blocks.extend(source_blocks)
        for count, (number, line) in enumerate(read_block(source_blocks[0], source.path) if source_blocks else []):
            if count >= first_rows:
                break
            _check_line(source, number, line, allow_absolute_image_paths)
            checked += 1
    for block in rng.sample(blocks, min(random_rows, len(blocks))) if blocks else []:
        source = sources[block.source]
        lines = list(read_block(block, source.path))
        if lines:
            _check_line(source, *rng.choice(lines), allow_absolute_image_paths)
            checked += 1
    return checked
