r"""`yfcc4k`: the YFCC4K test set, from `yfcc4k_places365.csv` (`IMG_ID`, `LAT`, `LON`, ...) and its image folder.
Images are found at `IMG_ID` below `--images`; like every table converter it decides the coordinate order for the
whole file first and stops when that is unclear.

    python -m open_r1.data.convert yfcc4k --csv yfcc4k_places365.csv --images yfcc4k/ \
        --out data/yfcc4k/test.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from open_r1.data.convert.csv_table import Columns, add_table_arguments, table_source
from open_r1.data.convert.writer import Record, Skip

DEFAULTS = Columns(image="IMG_ID", lat="LAT", lon="LON", id="IMG_ID", country="country", region="region", city="city")
DESCRIPTION = "YFCC4K: yfcc4k_places365.csv (IMG_ID, LAT, LON) plus its image folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, DEFAULTS)


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int]:
    return table_source(args, DEFAULTS)
