"""WebDataset tar shards: find them (brace patterns, folders), read their samples (an image and a json each)
without unpacking, and read a sample's labels. Used by the row stream and by `convert webdataset`."""

from __future__ import annotations

import io
import math
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from braceexpand import braceexpand

from open_r1.data.images import IMAGE_SUFFIXES
from open_r1.data.jsonl import split_paths
from open_r1.data.rows import DataError
from open_r1.geo.labels import clean_label, is_missing

SHARD_SUFFIXES = (".tar",)
IMAGE_EXTENSIONS = tuple(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)  # a sample's image member, by key
LAT_KEYS = ("lat", "latitude")
LON_KEYS = ("lon", "lng", "longitude")


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
    """lat, lon, country, region, city and id from a sample's json, accepting the usual key spellings.

    NaN, None, null and empty values (what pandas writes for an empty cell) are missing, never the name "nan".
    """
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'json': expected an object, got {type(meta).__name__}")

    def number(keys: tuple[str, ...]) -> float:
        key = next((k for k in keys if not is_missing(meta.get(k))), None)
        if key is None:
            raise DataError(f"{where}: field '{keys[0]}': missing (looked for {', '.join(keys)})")
        if isinstance(meta[key], bool):
            raise DataError(f"{where}: field '{key}': expected a number, got the boolean {meta[key]!r}")
        try:
            value = float(meta[key])
        except (TypeError, ValueError):
            raise DataError(f"{where}: field '{key}': not a number: {meta[key]!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: field '{key}': not a finite number: {meta[key]!r}")
        return value

    labels = {"lat": number(LAT_KEYS), "lon": number(LON_KEYS)}
    for name in ("country", "region", "city", "id"):
        labels[name] = clean_label(meta.get(name))
    return labels


class NamedBytes(io.BytesIO):
    """Image bytes that print as their shard path, so decoding errors name the file like a path would."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.label = name

    def __str__(self) -> str:
        return self.label
