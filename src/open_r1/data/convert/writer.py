"""The writer every converter shares: checks coordinates, fills missing place names offline, renders the
conversation, extracts images when the source carries them, and writes the jsonl that `load_rows` reads.

Converters only turn their source into `Record`s (or `Skip`s saying why a row cannot be used); everything
that must be the same for all formats happens here, once. The jsonl is written next to its final path and
renamed at the end, so an interrupted or failed run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from open_r1.answer import DEFAULT_GEO_QUESTION, render_answer
from open_r1.data.rows import IMAGE_TAG, DataError
from open_r1.geo import country_code
from open_r1.geo.labels import clean_label

GEOCODE_BATCH = 4096
EXAMPLES_PER_REASON = 3


@dataclass
class Record:
    """One row as a converter read it; names may be missing (the writer fills them)."""

    id: str
    images: list[str]  # paths relative to the output image folder
    lat: float
    lon: float
    where: str  # "file:line" (or "shard:key", "photo path") for messages
    country: str | None = None
    region: str | None = None
    city: str | None = None
    image_data: list[bytes] | None = None  # bytes to write at `images` (samples extracted from shards)
    coordinate_fields: tuple[str, str] = ("lat", "lon")  # the source's names, for messages


@dataclass(frozen=True)
class Skip:
    """A source row that cannot become a training row, and why (counted and reported, never silent)."""

    reason: str
    where: str


@dataclass
class Summary:
    """What a conversion did: rows written, rows skipped by reason (with examples), labels filled."""

    out: str
    image_folder: str
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    filled: Counter = field(default_factory=Counter)

    def skip(self, item: Skip) -> None:
        self.skipped[item.reason] += 1
        shown = self.examples.setdefault(item.reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(item.where)

    def format(self) -> str:
        lines = [f"wrote {self.written:,} rows to {self.out} (image paths relative to {self.image_folder})"]
        total = sum(self.skipped.values())
        lines.append(f"skipped {total:,} rows" + (":" if total else ""))
        for reason, count in self.skipped.most_common():
            lines.append(f"  {count:,} {reason} (e.g. {', '.join(self.examples[reason])})")
        if self.filled:
            filled = ", ".join(f"{name} {self.filled[name]:,}" for name in ("country", "region", "city"))
            lines.append(f"names filled by offline reverse geocoding: {filled}")
        return "\n".join(lines)


@dataclass
class WriterOptions:
    question: str = DEFAULT_GEO_QUESTION
    fill_names: bool = True
    swap_latlon: bool | None = False  # None: the format has no columns to swap (EXIF), so no swap hint
    sft_targets: bool = False
    max_rows: int | None = None
    progress: bool = True


def check_coordinates(record: Record, swap_latlon: bool | None) -> Skip | None:
    """Put the coordinates in order, or say why the row is unusable; swapped columns stop the run."""
    lat, lon = (record.lon, record.lat) if swap_latlon else (record.lat, record.lon)
    lat_field, lon_field = record.coordinate_fields[::-1] if swap_latlon else record.coordinate_fields
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return Skip("with non-finite coordinates", record.where)
    if abs(lat) > 90 and abs(lon) <= 90 and abs(lat) <= 180 and swap_latlon is not None:
        if swap_latlon:
            raise DataError(
                f"{record.where}: field '{lat_field}': {lat} is not a latitude (|lat| > 90) once --swap_latlon "
                f"swapped the columns, while '{lon_field}' = {lon} would be one: this file's columns are in the "
                f"right order; run again without --swap_latlon"
            )
        raise DataError(
            f"{record.where}: field '{lat_field}': {lat} is not a latitude (|lat| > 90), while '{lon_field}' = "
            f"{lon} would be one: the latitude and longitude columns are swapped (im2gps3k_places365.csv is "
            f"known to label them the wrong way round); run again with --swap_latlon"
        )
    if abs(lat) > 90 or abs(lon) > 180:
        return Skip("with coordinates out of range", record.where)
    record.lat, record.lon = lat, lon
    return None


def fill_names(records: list[Record], summary: Summary) -> None:
    """Resolve every record's country/region/city by the one labelling rule (`open_r1.geo.labels`: the
    record's own labels win, gaps come from the nearest GeoNames place of its country within the caps), one
    vectorised lookup per batch, and count the names filled."""
    from open_r1.geo.labels import resolve_places

    places = resolve_places([r.lat for r in records], [r.lon for r in records], [r.country for r in records],
                            [r.region for r in records], [r.city for r in records])
    for record, country, region, city in zip(records, places.country.tolist(), places.region.tolist(),
                                             places.city.tolist()):
        for level, value in (("country", country), ("region", region), ("city", city)):
            if getattr(record, level) is None and value is not None:
                summary.filled[level] += 1
            setattr(record, level, value)


def render_row(record: Record, options: WriterOptions) -> dict:
    """The jsonl object for a record, in the format of `open_r1.data.jsonl` (and of data/demo)."""
    if options.sft_targets:
        from open_r1.data.sft_targets import chain_of_region_target

        answer = chain_of_region_target(
            {"id": record.id, "lat": record.lat, "lon": record.lon, "country": record.country,
             "region": record.region, "city": record.city, "source": record.where}
        )
    else:
        answer = render_answer(record.lat, record.lon, record.country, record.region, record.city)
    return {
        "id": record.id,
        "image": record.images[0] if len(record.images) == 1 else record.images,
        "conversations": [
            {"from": "human", "value": IMAGE_TAG * len(record.images) + options.question},
            {"from": "gpt", "value": answer},
        ],
        "lat": round(record.lat, 6),
        "lon": round(record.lon, 6),
        "country": record.country,
        "region": record.region,
        "city": record.city,
    }


def _save_images(record: Record, image_folder: str) -> None:
    for rel, data in zip(record.images, record.image_data or []):
        path = os.path.join(image_folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)


def _batches(items: Iterable[Record | Skip], summary: Summary, options: WriterOptions) -> Iterator[list[Record]]:
    """Checked records in batches (for one geocoder call each); skips go straight into the summary."""
    batch: list[Record] = []
    taken = 0
    for item in items:
        if isinstance(item, Record):
            # Missing is None, NaN or blank; countries are ISO 3166-1 alpha-2 codes everywhere (the geocoder's
            # and OSV-5M's form) when they name a country, and kept as written otherwise.
            item.country, item.region, item.city = (
                clean_label(item.country), clean_label(item.region), clean_label(item.city))
            item.country = country_code(item.country) or item.country
            item = check_coordinates(item, options.swap_latlon) or item
        if isinstance(item, Skip):
            summary.skip(item)
            continue
        batch.append(item)
        taken += 1
        if len(batch) >= GEOCODE_BATCH:
            yield batch
            batch = []
        if options.max_rows is not None and taken >= options.max_rows:
            break
    if batch:
        yield batch


def write_records(
    items: Iterable[Record | Skip],
    out: str,
    image_folder: str,
    options: WriterOptions | None = None,
    total: int | None = None,
    desc: str = "convert",
) -> Summary:
    """Write `items` to the jsonl `out` (image paths relative to `image_folder`) and say what happened.

    `out` appears only when the run finishes with at least one row.
    """
    options = options or WriterOptions()
    summary = Summary(out=out, image_folder=image_folder)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    partial = f"{out}.partial"
    progress = tqdm(items, total=total, desc=desc, unit=" rows", disable=not options.progress, mininterval=1.0)
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            for batch in _batches(progress, summary, options):
                if options.fill_names:
                    fill_names(batch, summary)
                for record in batch:
                    _save_images(record, image_folder)
                    handle.write(json.dumps(render_row(record, options), ensure_ascii=False) + "\n")
                    summary.written += 1
        if summary.written:
            os.replace(partial, out)
        else:
            os.remove(partial)  # an empty jsonl would only fail later, in load_rows
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        progress.close()
    return summary
