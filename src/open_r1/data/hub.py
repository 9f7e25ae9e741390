"""Rows from a Hugging Face dataset (`--dataset_name`), so a dataset from the Hub trains and evaluates as it ships.

`--dataset_name` is a Hub id, a folder `datasets.load_dataset` reads, a parquet/arrow/csv/json file or a
`save_to_disk` folder. Each record goes through the jsonl reader's `parse_row`, so every stage sees the same `Row`s
and checks; errors name the dataset, split, row and column. Coordinate and image columns are guessed from common
spellings unless given (the guess is printed); embedded images are cached on disk once; `HubRowStream` reads
lazily (`--streaming`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import numbers
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from open_r1.console import Progress, say
from open_r1.data.rows import LABEL_FIELDS, DataError, Row
from open_r1.errors import ArgumentError, InputError

logger = logging.getLogger(__name__)

LAT_NAMES = ("latitude", "lat", "gps_latitude", "gps_lat", "lat_deg")
LON_NAMES = ("longitude", "lon", "lng", "long", "gps_longitude", "gps_lon", "lon_deg")
COORDINATE_NAMES = ("coordinates", "coordinate", "coords", "latlon", "lat_lon", "latlng", "gps", "location")
IMAGE_NAMES = ("image", "images", "img", "jpg", "jpeg", "png", "photo", "picture", "image_path", "file_name")
ID_NAMES = ("id", "image_id", "img_id", "photoid", "photo_id", "key", "__key__", "uid")
LABEL_NAMES = {
    "country": ("country", "country_code", "countrycode", "country_iso", "cc"),
    "region": ("region", "state", "admin1", "province"),
    "city": ("city", "town", "locality"),
}
FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}
_SLICE = re.compile(r"^(?P<split>[\w.-]+)\[(?P<start>\d*):(?P<stop>\d*)\]$")
_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"RIFF", ".webp"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


@dataclass(frozen=True)
class HubSource:
    """Which dataset, configuration and split to read."""

    name: str
    config: str | None = None
    split: str = "train"

    @classmethod
    def from_args(cls, args: Any) -> HubSource:
        return cls(args.dataset_name, getattr(args, "dataset_config", None), getattr(args, "dataset_split", "train"))

    @property
    def first_row(self) -> int:
        """The row a sliced split (`test[500:]`) starts at: rows are named by their index in the whole split."""
        match = _SLICE.match(self.split)
        return int(match["start"]) if match and match["start"] else 0

    def where(self, index: int) -> str:
        config = f", config {self.config}" if self.config else ""
        return f"dataset {self.name}{config}, split {self.split}, row {index}"


@dataclass(frozen=True)
class Columns:
    """Which column holds each part of a row (None: the dataset has none)."""

    image: str
    lat: str | None = None
    lon: str | None = None
    coordinates: str | None = None  # one column of [lat, lon] instead of lat and lon
    labels: dict[str, str] = field(default_factory=dict)  # country/region/city -> column
    id: str | None = None
    conversations: str | None = None

    def describe(self) -> str:
        coords = f"coordinates '{self.coordinates}' [lat, lon]" if self.coordinates else (
            f"latitude '{self.lat}', longitude '{self.lon}'" if self.lat else "no coordinates")
        labels = ", ".join(f"{name} '{column}'" for name, column in self.labels.items()) or "no labels"
        return f"image '{self.image}', {coords}, {labels}, id '{self.id or '(row index)'}'"


def parse_label_columns(value: str | Sequence[str] | None) -> dict[str, str]:
    """`country=country_code region=state city` (comma or space separated) -> {field: column}; a bare name is
    both the field and the column."""
    if not value:
        return {}
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    labels = {}
    for part in parts:
        name, _, column = part.partition("=")
        if name not in LABEL_FIELDS or (not column and "=" in part):
            raise ArgumentError(f"--label_columns {part!r}: give FIELD=COLUMN with FIELD one of {', '.join(LABEL_FIELDS)}"
                                f" (e.g. country=country_code region=state city)")
        labels[name] = column or name
    return labels


def _find(names: Iterable[str], columns: Sequence[str]) -> str | None:
    lowered = {column.lower(): column for column in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _is_image(feature: Any) -> bool:
    from datasets import Image

    return isinstance(feature, Image) or isinstance(getattr(feature, "feature", None), Image)


def guess_columns(features: Any, args: Any, source: HubSource) -> Columns:
    """The columns the flags name, or the common spellings; a named column that does not exist is an error."""
    names = list(features)

    def given(flag: str, column: str | None) -> str | None:
        if column and column not in names:
            raise ArgumentError(f"--{flag} {column!r}: {source.name} has no such column (columns: {', '.join(names)})")
        return column

    image = (given("image_column", getattr(args, "image_column", None))
             or next((n for n in names if _is_image(features[n])), None) or _find(IMAGE_NAMES, names))
    if image is None:
        raise ArgumentError(f"{source.name}: no image column found among {', '.join(names)}; name it with --image_column")
    lat = given("lat_column", getattr(args, "lat_column", None))
    lon = given("lon_column", getattr(args, "lon_column", None))
    coordinates = given("coordinates_column", getattr(args, "coordinates_column", None))
    if not (lat or lon or coordinates):
        lat, lon = _find(LAT_NAMES, names), _find(LON_NAMES, names)
        if not (lat and lon):
            lat = lon = None
            coordinates = _find(COORDINATE_NAMES, names)
    if bool(lat) != bool(lon):
        raise ArgumentError("--lat_column and --lon_column go together (or give --coordinates_column)")
    labels = parse_label_columns(getattr(args, "label_columns", None))
    for column in labels.values():
        if column not in names:
            raise ArgumentError(f"--label_columns: {source.name} has no column {column!r} (columns: {', '.join(names)})")
    if not labels:
        labels = {name: found for name, spellings in LABEL_NAMES.items() if (found := _find(spellings, names))}
    row_id = given("id_column", getattr(args, "id_column", None)) or _find(ID_NAMES, names)
    columns = Columns(image, lat, lon, coordinates, labels, row_id, "conversations" if "conversations" in names else None)
    say(f"{source.name}: columns {columns.describe()} (set --image_column, --lat_column/--lon_column or "
        f"--coordinates_column, --label_columns, --id_column to choose others)")
    return columns


# -- opening the dataset


def _select_slice(dataset: Any, split: str) -> tuple[str, slice | None]:
    match = _SLICE.match(split)
    if not match:
        return split, None
    start, stop = match["start"], match["stop"]
    return match["split"], slice(int(start) if start else None, int(stop) if stop else None)


def open_dataset(source: HubSource, streaming: bool = False) -> Any:
    """The split as a `datasets.Dataset` (an `IterableDataset` with `streaming`); failures are InputErrors."""
    import datasets

    path = Path(source.name)
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
            dataset = datasets.load_from_disk(str(path))
            split, part = _select_slice(dataset, source.split)
            if isinstance(dataset, datasets.DatasetDict):
                if split not in dataset:
                    raise InputError(f"--dataset_split {split}: {source.name} has the splits {', '.join(dataset)}")
                dataset = dataset[split]
            if part is not None:
                dataset = dataset.select(range(len(dataset))[part])
            return dataset.to_iterable_dataset() if streaming else dataset
        if path.is_file():
            builder = FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise InputError(f"--dataset_name {source.name}: a file must be one of {', '.join(FILE_BUILDERS)}")
            split, _ = _select_slice(None, source.split)
            return datasets.load_dataset(builder, data_files={split: str(path)}, split=source.split,
                                         streaming=streaming)
        return datasets.load_dataset(source.name, source.config, split=source.split, streaming=streaming)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, ConnectionError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"--dataset_name {source.name} (config {source.config}, split {source.split}): cannot load "
                         f"it: {message}") from None


def undecoded(dataset: Any, columns: Columns) -> Any:
    """The dataset with its image column(s) as {bytes, path}: nothing is decoded until a row is used."""
    from datasets import Image, List
    from datasets import Sequence as SequenceFeature

    feature = (dataset.features or {}).get(columns.image)
    if feature is None:
        return dataset
    if isinstance(feature, Image):
        return dataset.cast_column(columns.image, Image(decode=False))
    if isinstance(feature, (List, SequenceFeature)) and isinstance(feature.feature, Image):
        return dataset.cast_column(columns.image, type(feature)(Image(decode=False)))
    return dataset


# -- one record to one raw row


def _coordinate(value: Any, column: str, where: str, limit: float) -> float | None:
    """A coordinate cell as a float (None when empty); anything else names the column."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = f"the string {value!r}" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
        raise DataError(f"{where}: column '{column}': expected a number, got {kind} (store decimal degrees as a "
                        f"float column)")
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        raise DataError(f"{where}: column '{column}': {number} is outside [-{limit:g}, {limit:g}]")
    return number


def _coordinates(record: dict, columns: Columns, where: str) -> tuple[float | None, float | None]:
    if columns.lat:
        return (_coordinate(record[columns.lat], columns.lat, where, 90.0),
                _coordinate(record[columns.lon], columns.lon, where, 180.0))
    if not columns.coordinates:
        return None, None
    value = record[columns.coordinates]
    if value is None:
        return None, None
    if isinstance(value, dict):
        value = [value.get(_find(LAT_NAMES, list(value)) or "lat"), value.get(_find(LON_NAMES, list(value)) or "lon")]
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise DataError(f"{where}: column '{columns.coordinates}': expected [latitude, longitude], got {value!r}")
    return (_coordinate(value[0], f"{columns.coordinates}[0]", where, 90.0),
            _coordinate(value[1], f"{columns.coordinates}[1]", where, 180.0))


def _label(value: Any, feature: Any) -> Any:
    """A ClassLabel's name instead of its number (country codes are often stored that way)."""
    from datasets import ClassLabel

    if isinstance(feature, ClassLabel) and isinstance(value, int) and value >= 0:
        return feature.int2str(value)
    return value


def image_suffix(data: bytes) -> str:
    return next((suffix for magic, suffix in _MAGIC if data.startswith(magic)), ".img")


class ImageCache:
    """Embedded image bytes written once as files (`<folder>/<row>_<k>.<ext>`), atomically, so ranks and later
    runs that read the same dataset share them."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.written = 0

    def path(self, data: bytes, index: int, k: int) -> str:
        path = self.folder / f"{index // 10000:05d}" / f"{index:09d}_{k}{image_suffix(data)}"
        if not (path.is_file() and path.stat().st_size == len(data)):
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(f".{path.name}.{os.getpid()}")
            part.write_bytes(data)
            os.replace(part, path)
            self.written += 1
        return str(path)


def _image_cells(value: Any, column: str, where: str) -> list[Any]:
    cells = list(value) if isinstance(value, (list, tuple)) else [value]
    if not cells or any(cell is None for cell in cells):
        raise DataError(f"{where}: column '{column}': no image (the cell is empty)")
    return cells


def _cell_parts(cell: Any, column: str, where: str) -> tuple[bytes | None, str | None]:
    """(bytes, path) of one image cell: an undecoded Image, a path string, or raw bytes."""
    if isinstance(cell, dict):
        data, path = cell.get("bytes"), cell.get("path")
    elif isinstance(cell, str):
        data, path = None, cell
    elif isinstance(cell, (bytes, bytearray)):
        data, path = bytes(cell), None
    else:
        raise DataError(f"{where}: column '{column}': expected an image, got {type(cell).__name__}")
    if not data and not path:
        raise DataError(f"{where}: column '{column}': no image bytes and no path")
    return (bytes(data) if data else None), path


def record_to_raw(record: dict, index: int, columns: Columns, features: Any, source: HubSource,
                  image_files: list[str]) -> dict[str, Any]:
    """The jsonl-style raw row of one record, with `image_files` as its images (absolute paths or, in a stream,
    placeholders): what `parse_row` reads."""
    from open_r1.answer import render_answer

    where = source.where(index)
    lat, lon = _coordinates(record, columns, where)
    labels = {name: _label(record[column], features.get(column) if features else None)
              for name, column in columns.labels.items()}
    if columns.conversations and record.get(columns.conversations):
        conversations = record[columns.conversations]
    else:
        answer = render_answer(lat, lon, labels.get("country"), labels.get("region"), labels.get("city")) \
            if lat is not None and lon is not None else ""
        conversations = [{"from": "human", "value": ""}, {"from": "gpt", "value": answer}]
    row_id = record.get(columns.id) if columns.id else None
    return {"id": str(index) if row_id is None else row_id, "image": image_files, "conversations": conversations,
            "lat": lat, "lon": lon, **labels}


def _local_path(path: str, source: HubSource, column: str, where: str) -> str:
    """An image cell's path as a file here: absolute, or relative to the dataset's folder."""
    if not os.path.isabs(path):
        base = Path(source.name)
        path = str((base if base.is_dir() else base.parent) / path)
    if not os.path.isfile(path):
        raise DataError(f"{where}: column '{column}': image not found at {path} (and the cell holds no bytes)")
    return path


def cache_folder(args: Any, source: HubSource, dataset: Any) -> Path:
    """Where a dataset's embedded images are written: one folder per dataset version (its Arrow files, their sizes
    and times), so a changed dataset never reuses another version's images."""
    root = getattr(args, "image_cache_dir", None)
    if not root:
        import datasets

        root = os.path.join(datasets.config.HF_DATASETS_CACHE, "geo_r_images")
    name = re.sub(r"[^\w.-]+", "_", f"{source.name}-{source.config or 'default'}-{source.split}").strip("_")[-80:]
    files = [(f["filename"], os.path.getsize(f["filename"]), os.path.getmtime(f["filename"]))
             for f in dataset.cache_files if os.path.isfile(f["filename"])]
    version = hashlib.blake2b(repr((source, files)).encode("utf-8"), digest_size=8).hexdigest()
    return Path(root) / f"{name}-{version}"


def load_hub_rows(args: Any, *, check_images: bool = True, max_rows: int | None = None) -> list[Row]:
    """Every row of the split, validated like a jsonl row, with images as files (embedded bytes cached once)."""
    from open_r1.data.jsonl import parse_row

    source = HubSource.from_args(args)
    say(f"reading {source.name} (split {source.split}) with datasets.load_dataset")
    dataset = open_dataset(source)
    columns = guess_columns(dataset.features, args, source)
    features = dataset.features
    cache = ImageCache(cache_folder(args, source, dataset))
    dataset = undecoded(dataset, columns)
    total = len(dataset) if max_rows is None else min(max_rows, len(dataset))
    progress = Progress(f"reading {source.name}", total)
    rows: list[Row] = []
    for index, record in enumerate(itertools.islice(dataset, total), start=source.first_row):
        where = source.where(index)
        files = []
        for k, cell in enumerate(_image_cells(record[columns.image], columns.image, where)):
            data, path = _cell_parts(cell, columns.image, where)
            files.append(cache.path(data, index, k) if data else _local_path(path, source, columns.image, where))
        raw = record_to_raw(record, index, columns, features, source, files)
        rows.append(parse_row(raw, where, str(cache.folder), check_images, allow_absolute_image_paths=True))
        if len(rows) % 64 == 0:
            progress(len(rows))
    if not rows:
        raise DataError(f"{source.where(source.first_row)}: no rows (the split is empty)")
    say(f"{source.name}: {len(rows):,} rows" + (f", {cache.written:,} embedded images written to {cache.folder}"
                                                if cache.written else ""))
    return rows


def read_rows(args: Any, *, check_images: bool = True) -> list[Row]:
    """The rows an entry point reads: from `--dataset_name` when given, else its jsonl files and image folders."""
    from open_r1.data.jsonl import load_rows

    max_rows = getattr(args, "max_rows", None)
    if getattr(args, "dataset_name", None):
        return load_hub_rows(args, check_images=check_images, max_rows=max_rows)
    return load_rows(args.data_file_paths, args.image_folders, check_images=check_images, max_rows=max_rows,
                     allow_absolute_image_paths=getattr(args, "allow_absolute_image_paths", False))


# -- streaming


class HubRowStream:
    """A picklable generator function over a streamed dataset's rows (`load_dataset(..., streaming=True)`), with
    the columns of `RowStream`: shuffled per epoch by a seeded buffer over the dataset's own order, so the order
    depends on (seed, epoch) alone and a restart at `start_row` continues exactly there (the rows before it are
    read but not parsed or decoded). Images are decoded only for the rows `decode_only` keeps (this rank's)."""

    def __init__(self, args: Any, *, question_template: str | None = None, max_pixels: int | None = None,
                 seed: int = 0, epochs: int | None = None, start_row: int = 0, shuffle_buffer: int = 1000,
                 decode_only: Callable[[int], bool] | None = None, decode_images: bool = True):
        self.args = args
        self.source = HubSource.from_args(args)
        self.question_template = question_template
        self.max_pixels = max_pixels
        self.seed, self.epochs, self.start_row = seed, epochs, start_row
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.decode_only = decode_only
        self.decode_images = decode_images
        self._columns: Columns | None = None
        self._features: Any = None

    def open(self) -> tuple[Any, Columns, Any]:
        dataset = open_dataset(self.source, streaming=True)
        features = self._features = dataset.features
        if self._columns is None:
            if features is None:
                raise InputError(f"--dataset_name {self.source.name}: the streamed dataset declares no features, so "
                                 f"its image column cannot be found")
            self._columns = guess_columns(features, self.args, self.source)
        return undecoded(dataset, self._columns), self._columns, features

    def _epoch(self, epoch: int) -> Iterator[tuple[int, dict]]:
        from open_r1.data.streaming.stream import buffer_shuffled

        dataset, _, _ = self.open()
        rng = random.Random(f"{self.seed}:{epoch}")
        return buffer_shuffled(enumerate(dataset, start=self.source.first_row), self.shuffle_buffer, rng)

    def _row(self, index: int, record: dict, decode: bool) -> dict[str, Any]:
        import io

        from open_r1.data.dataset import prompt_messages
        from open_r1.data.images import load_image
        from open_r1.data.jsonl import parse_row
        from open_r1.data.streaming.rank_rows import NotDecoded
        from open_r1.data.streaming.shared_images import shared

        columns, source = self._columns, self.source
        where = source.where(index)
        cells = [_cell_parts(c, columns.image, where) for c in _image_cells(record[columns.image], columns.image, where)]
        names = [path or f"{source.name}#{index}_{k}" for k, (_, path) in enumerate(cells)]
        raw = record_to_raw(record, index, columns, self._features, source, names)
        row = parse_row(raw, where, "", False, allow_absolute_image_paths=True)
        out = row.to_dict()
        out["prompt"] = prompt_messages(row, self.question_template)
        if self.decode_images and not decode:
            out["images"] = [NotDecoded(name) for name in names]
        elif self.decode_images:
            out["images"] = [shared(load_image(io.BytesIO(data) if data else _local_path(path, source, columns.image,
                                                                                           where),
                                               self.max_pixels, where=where)) for data, path in cells]
        return out

    def __call__(self) -> Iterator[dict[str, Any]]:
        position, yielded = 0, 0
        for epoch in itertools.count() if self.epochs is None else range(self.epochs):
            start = position
            for index, record in self._epoch(epoch):
                position += 1
                if position <= self.start_row:
                    continue
                decode = self.decode_only is None or self.decode_only(yielded)
                yield self._row(index, record, decode)
                yielded += 1
            if position == start:
                raise DataError(f"{self.source.where(0)}: no rows (the split is empty)")


def hub_streaming_dataset(args: Any, **options: Any) -> Any:
    """`HubRowStream` as the `IterableDataset` TRL's GRPOTrainer takes (see `streaming_dataset`)."""
    from datasets import IterableDataset

    stream = HubRowStream(args, **options)
    stream.open()  # the column guess and a bad name or split fail here, before the model loads
    return IterableDataset.from_generator(stream)
