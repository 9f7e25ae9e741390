r"""`webdataset`: tar shards with an image and a json (`lat`, `lon`, optional labels and `id`) per sample -> the
images extracted to a folder plus a jsonl. Each shard gets its own sub-folder, since keys often repeat across
shards. To train on shards without extracting them, pass them to `--data_file_paths` with `--streaming`.

    python -m open_r1.data.convert webdataset --shards 'shards/train-{000..099}.tar' \
        --out data/wds/train.jsonl --images_out data/wds/images
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
from collections.abc import Iterator

from open_r1.data.convert.writer import Record, Skip
from open_r1.data.rows import DataError
from open_r1.data.streaming.shards import IMAGE_EXTENSIONS, expand_shards, iter_shard_samples, sample_labels

DESCRIPTION = "WebDataset tar shards (image + json with lat/lon per sample); images are extracted"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", nargs="+", required=True, help="shard paths or brace patterns (a-{000..009}.tar)")
    parser.add_argument(
        "--images_out", default=None, help="folder for the extracted images (default: images/ next to --out)"
    )
    parser.add_argument("--swap_latlon", action="store_true", help="the samples' lat and lon values are swapped")


def shard_records(shards: list[str]) -> Iterator[Record | Skip]:
    """One record per sample, carrying the image bytes for the writer to save."""
    for shard in shards:
        prefix = os.path.splitext(os.path.basename(shard))[0]
        for sample in iter_shard_samples(shard):
            where = sample.where
            ext = sample.image_ext()
            if ext is None:
                yield Skip(f"samples without an image ({'/'.join(IMAGE_EXTENSIONS)})", where)
                continue
            if "json" not in sample.members:
                yield Skip("samples without a json", where)
                continue
            rel = posixpath.normpath(f"{prefix}/{sample.key}.{ext}")
            if rel.startswith("../") or posixpath.isabs(rel):
                yield Skip("samples whose key points outside the image folder", where)
                continue
            try:
                labels = sample_labels(json.loads(sample.read("json")), where)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield Skip("samples with invalid json", where)
                continue
            except DataError:
                yield Skip("samples without numeric lat/lon in their json", where)
                continue
            yield Record(
                id=labels["id"] or f"{prefix}/{sample.key}",
                images=[rel],
                lat=labels["lat"],
                lon=labels["lon"],
                where=where,
                country=labels["country"],
                region=labels["region"],
                city=labels["city"],
                image_data=[sample.read(ext)],
            )


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int | None]:
    images_out = args.images_out or os.path.join(os.path.dirname(os.path.abspath(args.out)), "images")
    return shard_records(expand_shards(args.shards)), images_out, None
