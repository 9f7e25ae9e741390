r"""`im2gps3k`: the IM2GPS3K test set, from the `im2gps3k_places365.csv` that geolocation repos link
(columns `IMG_ID`, `AUTHOR`, `LAT`, `LON`, ...) and its folder of 2,997 Flickr photos.

TIBHannover/GeoEstimation published that file with its coordinate columns named the wrong way round (`LON`,
`LAT` over latitude, longitude values) until 2020-02-17; the file linked today is fixed, but old copies still
circulate. The converter recognises both (header plus Flickr-style ids) and checks the sampled places against
the offline geocoder either way (`latlon.decide`), so either file converts correctly without a flag and the
output says which it found; `--swap_latlon` / `--no_swap_latlon` override, and an unclear file stops the run.

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
