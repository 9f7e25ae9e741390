r"""`im2gps3k`: the IM2GPS3K test set, from `im2gps3k_places365.csv` and its folder of 2,997 Flickr photos. Old
copies of that file name the coordinate columns the wrong way round; both versions convert without a flag
(`latlon.decide`), the output says which it found, and `--swap_latlon` / `--no_swap_latlon` override.

    python -m open_r1.data.convert im2gps3k --csv im2gps3k_places365.csv --images im2gps3ktest/ \
        --out data/im2gps3k/test.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from open_r1.data.convert.csv_table import Columns, add_table_arguments, table_source
from open_r1.data.convert.writer import Record, Skip

DEFAULTS = Columns(image="IMG_ID", lat="LAT", lon="LON", id="IMG_ID")
DESCRIPTION = "IM2GPS3K: im2gps3k_places365.csv (IMG_ID, LAT, LON) plus its image folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, DEFAULTS)


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int]:
    return table_source(args, DEFAULTS)
