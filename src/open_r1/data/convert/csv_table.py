r"""`csv`: any table with an image column and latitude/longitude columns (MP-16-style training sets, your own
metadata); the column names are flags, and the OSV-5M, IM2GPS3K and YFCC4K converters are this one with their
datasets' names as defaults. The coordinate order is decided for the whole file before any row is written
(`latlon.decide`); when it is unclear the run stops and asks for `--swap_latlon` or `--no_swap_latlon`.

    python -m open_r1.data.convert csv --csv mp16_places365.csv --images mp16/ --out data/mp16.jsonl --image_col IMG_ID
"""

from __future__ import annotations

import argparse
import codecs
import csv
import dataclasses
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from open_r1.data.convert import latlon
from open_r1.data.convert.writer import Record, Skip
from open_r1.data.images import IMAGE_SUFFIXES
from open_r1.data.rows import DataError
from open_r1.geo.labels import clean_label, is_missing

_AMBIGUOUS = -1  # a stem that names files in several places


class ImageFinder:
    """Find a table's image under the image folder: at the given relative path, with an image extension
    added, or by file name anywhere below the folder (OSV-5M unpacks into `00/`, `01/`, ... sub-folders).

    The folder is listed once, when a name is first looked up by file name; the index maps each file stem
    to the number of its (sub-folder, extension) pair, which keeps millions of entries affordable.
    `by_name=True` skips the path checks, for tables that give bare ids (OSV-5M).
    """

    def __init__(self, root: str, by_name: bool = False):
        self.root = root
        self.by_name = by_name
        self._index: dict[str, int] | None = None
        self._kinds: list[tuple[str, str]] = []  # (sub-folder, extension as on disk), by number

    def _build(self) -> dict[str, int]:
        index: dict[str, int] = {}
        numbers: dict[tuple[str, str], int] = {}  # one int object per kind, shared by all its files
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames.sort()
            folder = os.path.relpath(dirpath, self.root)
            folder = "" if folder == "." else folder
            for name in filenames:
                stem, suffix = os.path.splitext(name)
                if suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                kind = numbers.get((folder, suffix))
                if kind is None:
                    kind = numbers[(folder, suffix)] = len(self._kinds)
                    self._kinds.append((folder, suffix))
                index[stem] = _AMBIGUOUS if stem in index else kind
        return index

    def find(self, ref: str) -> str | Skip:
        """The path relative to the root, or why there is none (the caller fills in `Skip.where`)."""
        ref = ref.strip()
        if not ref:
            return Skip("with an empty image name", "")
        stem, suffix = os.path.splitext(os.path.basename(ref))
        if suffix.lower() not in IMAGE_SUFFIXES:
            stem = os.path.basename(ref)
        if not self.by_name:
            candidates = (ref,) if suffix.lower() in IMAGE_SUFFIXES else (ref, *(ref + s for s in IMAGE_SUFFIXES))
            for candidate in candidates:
                if os.path.isfile(os.path.join(self.root, candidate)):
                    return candidate
        if self._index is None:
            self._index = self._build()
        kind = self._index.get(stem)
        if kind is None:
            return Skip("whose image is not in the image folder", "")
        if kind == _AMBIGUOUS:
            return Skip("whose image name matches several files below the image folder", "")
        folder, suffix = self._kinds[kind]
        return os.path.join(folder, stem + suffix) if folder else stem + suffix


@dataclass
class Columns:
    """Which column holds what; names are optional (the writer fills what is missing)."""

    image: str
    lat: str
    lon: str
    id: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None


COLUMN_KEYS = ("image", "lat", "lon", "id", "country", "region", "city")


def present_columns(path: str, header: list[str], columns: Columns, required: frozenset[str]) -> Columns:
    """A copy of `columns` without the optional ones the header lacks; a missing required one is an error."""
    columns = dataclasses.replace(columns)
    for key in COLUMN_KEYS:
        name = getattr(columns, key)
        if name is not None and name not in header:
            if key in required:
                raise DataError(
                    f"{path}:1: field '{name}': no such column; the header has {header} "
                    f"(name the {key} column with --{key}_col)"
                )
            setattr(columns, key, None)
    return columns


def count_rows(path: str) -> int:
    """Data rows of a CSV for the progress bar (lines minus the header; quoted newlines make it approximate)."""
    with open(path, "rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 22), b""))
    return max(0, lines - 1)


def read_table(
    path: str,
    columns: Columns,
    finder: ImageFinder,
    delimiter: str = ",",
    required: frozenset[str] = frozenset({"image", "lat", "lon"}),
) -> Iterator[Record | Skip]:
    """Records from a CSV file, one per data row; bad rows become `Skip`s naming file and line.

    Columns in `required` must exist; the others are used when the header has them.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = present_columns(path, reader.fieldnames or [], columns, required)
        names = {key: getattr(columns, key) for key in ("country", "region", "city")}
        for values in reader:
            where = f"{path}:{reader.line_num}"
            lat_text, lon_text = (values.get(columns.lat) or "").strip(), (values.get(columns.lon) or "").strip()
            try:
                lat, lon = float(lat_text), float(lon_text)
            except ValueError:
                yield Skip("with missing or non-numeric coordinates", where)
                continue
            ref = values.get(columns.image)
            image = finder.find("" if is_missing(ref) else ref)
            if isinstance(image, Skip):
                yield Skip(image.reason, where)
                continue
            row_id = clean_label(values.get(columns.id)) if columns.id else None  # falls back to the image
            labels = {key: clean_label(values.get(name)) if name else None for key, name in names.items()}
            yield Record(
                id=row_id or image,
                images=[image],
                lat=lat,
                lon=lon,
                where=where,
                coordinate_fields=(columns.lat, columns.lon),
                **labels,  # NaN/None/null/"" -> missing (the writer fills them), never the name "nan"
            )


DELIMITER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def parse_delimiter(text: str) -> str:
    """The one-character field separator from `--delimiter`: the character itself, an escape as people type it
    in a shell (`'\\t'`, `'\\x1f'`, `'\\u0009'`) or a name (tab, comma, semicolon, pipe, space)."""
    value = DELIMITER_NAMES.get(text.strip().lower(), text)
    if "\\" in value and len(value) > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an unknown escape ('\\q') is an error, not a kept backslash
                value = codecs.decode(value, "unicode_escape")
        except (UnicodeDecodeError, DeprecationWarning) as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid escape ({err})") from None
    if len(value) != 1 or value in ('"', "\r", "\n"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one field separator: give one character, an escape such as '\\t', or a name "
            f"({', '.join(DELIMITER_NAMES)})"
        )
    return value


def add_table_arguments(parser: argparse.ArgumentParser, defaults: Columns) -> None:
    """--csv, --images and the column flags; a format's column names are the defaults (used when present)."""
    parser.add_argument("--csv", required=True, help="the metadata table")
    parser.add_argument("--images", required=True, help="image folder; output image paths are relative to it")
    for key in COLUMN_KEYS:
        default = getattr(defaults, key)
        shown = f"default {default}, used when present" if key not in ("image", "lat", "lon") else f"default {default}"
        parser.add_argument(f"--{key}_col", default=None, help=f"{key} column ({shown if default else 'none'})")
    parser.add_argument(
        "--delimiter", type=parse_delimiter, default=",",
        help="field separator: a character, an escape ('\\t') or a name (tab, comma, semicolon, pipe, space); "
        "default ','",
    )
    order = parser.add_mutually_exclusive_group()
    order.add_argument(
        "--swap_latlon", dest="swap_latlon", action="store_const", const=True, default=None,
        help="the column named latitude holds the longitudes and the other the latitudes (default: detected)",
    )
    order.add_argument(
        "--no_swap_latlon", dest="swap_latlon", action="store_const", const=False,
        help="the columns hold what their names say (default: detected)",
    )


def read_header(path: str, delimiter: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle, delimiter=delimiter), [])


def table_source(
    args: argparse.Namespace, defaults: Columns, by_name: bool = False
) -> tuple[Iterator[Record | Skip], str, int]:
    """(records, image folder, row count) for the flags of `add_table_arguments`; a column named by a flag
    must exist, a default one is used when the header has it.

    The coordinate order is decided here, for the whole file, and written back to `args.swap_latlon` (what
    the writer applies) with a line for the output in `args.coordinate_note`.
    """
    if not os.path.isfile(args.csv):
        raise DataError(f"{args.csv}: table not found")
    if not os.path.isdir(args.images):
        raise DataError(f"{args.images}: image folder not found")
    given = {key: getattr(args, f"{key}_col") for key in COLUMN_KEYS}
    columns = Columns(**{key: given[key] or getattr(defaults, key) for key in COLUMN_KEYS})
    required = frozenset({"image", "lat", "lon"} | {key for key, value in given.items() if value})
    header = read_header(args.csv, args.delimiter)
    present = present_columns(args.csv, header, columns, required)
    decision = latlon.decide(
        args.csv, header, present.lat, present.lon, args.delimiter, args.swap_latlon, country_col=present.country
    )
    args.swap_latlon, args.coordinate_note = decision.swap, decision.note
    records = read_table(args.csv, columns, ImageFinder(args.images, by_name), args.delimiter, required)
    return records, args.images, count_rows(args.csv)


DEFAULTS = Columns(image="image", lat="lat", lon="lon", id="id", country="country", region="region", city="city")
DESCRIPTION = "a CSV table with image, latitude and longitude columns (names given by flags)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, DEFAULTS)


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int]:
    return table_source(args, DEFAULTS)
