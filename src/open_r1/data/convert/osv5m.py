r"""`osv5m`: OpenStreetView-5M's `train.csv` / `test.csv` and its unpacked image folders. Images are `<id>.jpg`,
found by name below `--images` (the archives unpack into `00/`, `01/`, ...); the reverse geocoder fills the place
labels the table leaves empty.

    python -m open_r1.data.convert osv5m --csv osv5m/train.csv --images osv5m/images/train \
        --out data/osv5m/train.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from open_r1.data.convert.csv_table import Columns, add_table_arguments, table_source
from open_r1.data.convert.writer import Record, Skip

DEFAULTS = Columns(
    image="id", lat="latitude", lon="longitude", id="id", country="country", region="region", city="city"
)
DESCRIPTION = "OpenStreetView-5M: train.csv/test.csv plus the image folders (<id>.jpg in 00/, 01/, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, DEFAULTS)


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int]:
    return table_source(args, DEFAULTS, by_name=True)
