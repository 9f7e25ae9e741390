"""Line-aligned blocks of a jsonl file: the unit the row stream shuffles and reads, so a sorted file of millions
of rows mixes within a batch while only one block's lines are read at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

CHUNK_BYTES = 1 << 20  # a jsonl block: ~2,000 rows of a typical file


@dataclass(frozen=True)
class Block:
    """A stretch of one source read in order: bytes [start, end) of a jsonl file, or a whole shard."""

    source: int
    start: int = 0
    end: int = 0
    first_line: int = 1


def jsonl_blocks(source: int, path: str, chunk_bytes: int) -> list[Block]:
    """Cut a jsonl file into line-aligned blocks and number their first lines (one pass over the bytes)."""
    size = os.path.getsize(path)
    blocks, start, line = [], 0, 1
    with open(path, "rb") as handle:
        while start < size:
            handle.seek(min(start + chunk_bytes, size))
            if handle.tell() < size:
                handle.readline()  # the block ends after the line that crosses its nominal end
            end = handle.tell()
            blocks.append(Block(source, start, end, line))
            handle.seek(start)
            remaining = end - start
            while remaining:
                data = handle.read(min(remaining, 1 << 22))
                line += data.count(b"\n")
                remaining -= len(data)
            start = end
    return blocks


def read_block(block: Block, path: str) -> Iterator[tuple[int, bytes]]:
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
