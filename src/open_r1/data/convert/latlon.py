"""Which way round a table's latitude and longitude columns are, decided before a row is written.

A table whose columns are named the wrong way round cannot be caught row by row: a photo at (48.86, 2.33) is a
valid point either way, so a subset (`--max_rows 3`) or a file of one region may hold no value that gives the
swap away. The order is therefore decided once per file, from rows sampled across the whole file (whatever
`--max_rows` later writes), with three kinds of evidence:

- known files: the header and value fingerprint of a file that is known to be swapped or not, such as
  `im2gps3k_places365.csv` as TIBHannover/GeoEstimation published it until 2020-02-17 (header
  `IMG_ID,AUTHOR,LON,LAT,...` over latitude, longitude values; commit 5e091c0 fixed the header);
- impossible values: a value beyond +-90 can only be a longitude;
- plausibility: photos are taken where people are, so in the right order a sampled place lies near a GeoNames
  place of the offline reverse geocoder (and in the table's own country, when it has a country column), while
  swapped it mostly lands at sea or in empty land. Each distinct place gives a likelihood ratio from its
  distance to the nearest place in both orders; the sum must be clear (1000:1) and the places must agree.

When the evidence is not clear (a handful of rows, places that are plausible both ways), the conversion stops
and asks for `--swap_latlon` or `--no_swap_latlon`; an explicit flag is checked against impossible values.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from open_r1.data.rows import DataError
from open_r1.geo.labels import clean_label

SAMPLE_ROWS = 2000  # rows sampled for the decision, spread over the whole file
READ_ALL_BYTES = 16 << 20  # smaller files are read whole; larger ones are sampled at evenly spaced offsets
NEAR_KM = 10.0  # distance scale of the plausibility ratio: being within ~10 km of a place is as good as on it
MAX_ROW_RATIO = math.log(100.0)  # one place can shift the odds by at most 100:1 (never decide on one row)
COUNTRY_RATIO = math.log(20.0)  # the geocoded country matches the table's country column in one order only
CLEAR = math.log(1000.0)  # odds needed to decide from values alone
AGREEMENT = 0.75  # share of the places that lean one way which must lean the decided way
LEANS = 0.5  # a place leans one way when its ratio exceeds e^0.5 (about 1.6)

# Flickr photo files <photo id>_<secret>_<server>_<owner>.jpg (im2gps adds a <place>_<n>_ prefix) and owners
_FLICKR_FILE = re.compile(r"^(?:[A-Za-z]+_\d+_)?\d+_[0-9a-f]+_\d+_\d+@N\d\d\.jpg$")
_FLICKR_OWNER = re.compile(r"^(?:[0-9a-f]+_\d+_)?\d+@N\d\d$")


@dataclass(frozen=True)
class Layout:
    """A known file: its header starts with `header`, its values match `patterns` (column -> regex), and the
    column `lat_in` holds the latitudes."""

    name: str
    header: tuple[str, ...]
    lat_in: str
    lon_in: str
    patterns: tuple[tuple[str, re.Pattern], ...] = ()


PLACES365 = (("IMG_ID", _FLICKR_FILE), ("AUTHOR", _FLICKR_OWNER))
KNOWN_LAYOUTS = (
    Layout(
        "the im2gps3k_places365.csv (or im2gps_places365.csv) published until 2020-02-17, whose header says "
        "LON, LAT over latitude, longitude values",
        ("IMG_ID", "AUTHOR", "LON", "LAT"), lat_in="LON", lon_in="LAT", patterns=PLACES365,
    ),
    Layout(
        "the im2gps3k_places365.csv (or im2gps_places365.csv) as fixed on 2020-02-17, whose header says LAT, LON "
        "over latitude, longitude values",
        ("IMG_ID", "AUTHOR", "LAT", "LON"), lat_in="LAT", lon_in="LON", patterns=PLACES365,
    ),
)


@dataclass(frozen=True)
class Sample:
    """One sampled row: where it is, the values of the columns named latitude (`a`) and longitude (`b`)."""

    where: str
    a: float
    b: float
    country: str | None = None


@dataclass
class Evidence:
    """What the sampled values say; positive `score` favours the columns as named."""

    rows: int = 0
    only_swapped: list[Sample] = field(default_factory=list)  # |a| > 90 >= |b|: a is no latitude
    only_named: list[Sample] = field(default_factory=list)  # |b| > 90 >= |a|: b is no latitude
    places: int = 0  # distinct places valid both ways
    score: float = 0.0
    lean_named: int = 0
    lean_swapped: int = 0
    median_km_named: float = math.nan
    median_km_swapped: float = math.nan
    country_rows: int = 0  # places checked against the table's country column

    def verdict(self) -> bool | None:
        """True: swapped; False: as named; None: not clear. Mixed impossible rows are not a verdict."""
        if self.only_named:
            return False
        if self.only_swapped:
            return True
        leaning = self.lean_named + self.lean_swapped
        if self.score >= CLEAR and self.lean_named >= AGREEMENT * leaning:
            return False
        if self.score <= -CLEAR and self.lean_swapped >= AGREEMENT * leaning:
            return True
        return None

    def describe(self, lat_col: str, lon_col: str) -> str:
        if self.only_named or self.only_swapped:
            rows = self.only_named or self.only_swapped
            column = lon_col if self.only_named else lat_col
            return (
                f"{len(rows):,} of {self.rows:,} sampled rows have a '{column}' value beyond +-90 (e.g. "
                f"{rows[0].where}: {rows[0].b if self.only_named else rows[0].a}), which only a longitude can be"
            )
        if not self.places:
            return f"no sampled row ({self.rows:,}) holds a place that is valid both ways"
        odds = f"{math.exp(min(abs(self.score), 50)):.3g}:1"
        leaning = "as named" if self.score >= 0 else "swapped"
        country = f", {self.country_rows:,} of them checked against the country column" if self.country_rows else ""
        return (
            f"{self.places:,} distinct sampled places{country}: a GeoNames place lies a median "
            f"{self.median_km_named:,.1f} km away with '{lat_col}' as latitude and {self.median_km_swapped:,.1f} km "
            f"with '{lon_col}' as latitude; {self.lean_named:,} places lean to the names, {self.lean_swapped:,} to "
            f"the swap (odds {odds} {leaning}; deciding needs {math.exp(CLEAR):,.0f}:1 and {AGREEMENT:.0%} of "
            f"the places agreeing)"
        )


@dataclass(frozen=True)
class Decision:
    swap: bool
    note: str  # one line for the conversion's output


def _number(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _lines_at(path: str, offsets: list[int]) -> list[int]:
    """The 1-based line numbers of the lines that start at the (increasing) byte `offsets`, in one pass."""
    lines, count, position = [], 1, 0
    with open(path, "rb") as handle:
        for offset in offsets:
            while position < offset:
                chunk = handle.read(min(offset - position, 1 << 22))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                position += len(chunk)
            lines.append(count)
    return lines


def sample_rows(
    path: str, header: list[str], columns: dict[str, str | None], delimiter: str, limit: int = SAMPLE_ROWS
) -> list[dict[str, str]]:
    """Up to `limit` rows spread over the whole file (a dict per row, plus `__where__`); small files are read
    whole, large ones at evenly spaced byte offsets (a row cut by a quoted newline is left out)."""
    size = os.path.getsize(path)
    wanted = [name for name in columns.values() if name]
    if size <= READ_ALL_BYTES:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            rows = [{**{k: row.get(k) for k in wanted}, "__where__": f"{path}:{reader.line_num}"} for row in reader]
        stride = max(1, math.ceil(len(rows) / limit))
        return rows[::stride]
    index = {name: header.index(name) for name in wanted}
    rows, seen = [], set()
    with open(path, "rb") as handle:
        handle.readline()  # the header
        start = handle.tell()
        for k in range(limit):
            handle.seek(start + (size - start) * k // limit)
            if k:
                handle.readline()  # finish the line the offset fell into
            offset = handle.tell()
            if offset in seen:
                continue
            seen.add(offset)
            line = handle.readline().decode("utf-8", errors="replace")
            values = next(csv.reader([line], delimiter=delimiter), [])
            if len(values) >= len(header):  # a line cut by a quoted newline has fewer
                rows.append({**{k2: values[i] for k2, i in index.items()}, "__where__": offset})
    for row, line in zip(rows, _lines_at(path, [row["__where__"] for row in rows])):
        row["__where__"] = f"{path}:{line}"
    return rows


def _matches(layout: Layout, header: list[str], values: dict[str, list[str]]) -> bool:
    if tuple(header[: len(layout.header)]) != layout.header:
        return False
    for column, pattern in layout.patterns:
        seen = [v.strip() for v in values.get(column, []) if v and v.strip()]
        if not seen or sum(bool(pattern.match(v)) for v in seen) < 0.9 * len(seen):
            return False
    return True


def known_layout(header: list[str], path: str, delimiter: str) -> Layout | None:
    """The known file whose header and value fingerprint this table has, if any."""
    candidates = [layout for layout in KNOWN_LAYOUTS if tuple(header[: len(layout.header)]) == layout.header]
    if not candidates:
        return None
    pattern_columns = {column: column for layout in candidates for column, _ in layout.patterns}
    rows = sample_rows(path, header, pattern_columns, delimiter, limit=200)
    values = {column: [row.get(column) or "" for row in rows] for column in pattern_columns}
    return next((layout for layout in candidates if _matches(layout, header, values)), None)


def weigh(samples: list[Sample]) -> Evidence:
    """The evidence of sampled values for the columns as named against swapped (see the module doc)."""
    from open_r1.geo import country_code, nearest_places, reverse_geocode_arrays

    evidence = Evidence(rows=len(samples))
    both: dict[tuple[float, float], Sample] = {}
    for sample in samples:
        a_ok, b_ok = abs(sample.a) <= 90, abs(sample.b) <= 90
        if a_ok and b_ok:
            both.setdefault((round(sample.a, 2), round(sample.b, 2)), sample)  # one vote per place
        elif not a_ok and b_ok and abs(sample.a) <= 180:
            evidence.only_swapped.append(sample)
        elif a_ok and not b_ok and abs(sample.b) <= 180:
            evidence.only_named.append(sample)
    if not both:
        return evidence
    places = list(both.values())
    a = np.array([s.a for s in places])
    b = np.array([s.b for s in places])
    _, km_named = nearest_places(a, b)
    _, km_swapped = nearest_places(b, a)
    ratio = np.clip(np.log((km_swapped + NEAR_KM) / (km_named + NEAR_KM)), -MAX_ROW_RATIO, MAX_ROW_RATIO)
    given = np.array([(country_code(s.country) or s.country.upper()) if s.country else None for s in places],
                     dtype=object)
    has_country = given != None  # noqa: E711 (elementwise over an object array)
    if has_country.any():
        named_country, _, _ = reverse_geocode_arrays(a[has_country], b[has_country])
        swapped_country, _, _ = reverse_geocode_arrays(b[has_country], a[has_country])
        agree = (named_country == given[has_country]).astype(float) - (swapped_country == given[has_country])
        ratio[has_country] += COUNTRY_RATIO * agree
        evidence.country_rows = int(has_country.sum())
    evidence.places = len(places)
    evidence.score = float(ratio.sum())
    evidence.lean_named = int((ratio > LEANS).sum())
    evidence.lean_swapped = int((ratio < -LEANS).sum())
    evidence.median_km_named = float(np.median(km_named))
    evidence.median_km_swapped = float(np.median(km_swapped))
    return evidence


def _ask(path: str, lat_col: str, lon_col: str, why: str) -> DataError:
    return DataError(
        f"{path}:1: field '{lat_col}': cannot tell whether the columns '{lat_col}', '{lon_col}' hold latitude, "
        f"longitude (as named) or longitude, latitude (swapped): {why}. Look at a few rows and run again with "
        f"--no_swap_latlon if '{lat_col}' holds the latitudes, or --swap_latlon if '{lon_col}' does"
    )


def _impossible(sample: Sample, flag: str, lat_field: str, lon_field: str) -> DataError:
    """A row that the user's flag reads with a longitude as its latitude."""
    swap = flag == "--swap_latlon"
    fix = "without --swap_latlon (or with --no_swap_latlon)" if swap else "with --swap_latlon"
    return DataError(
        f"{sample.where}: field '{lat_field}': {sample.b if swap else sample.a} is not a latitude (|lat| > 90) "
        f"with {flag}, while '{lon_field}' = {sample.a if swap else sample.b} would be one: run again {fix}"
    )


def decide(
    path: str,
    header: list[str],
    lat_col: str,
    lon_col: str,
    delimiter: str,
    explicit: bool | None,
    country_col: str | None = None,
) -> Decision:
    """Whether the columns `lat_col`/`lon_col` must be swapped; `explicit` is the user's flag (None: detect)."""
    rows = sample_rows(path, header, {"lat": lat_col, "lon": lon_col, "country": country_col}, delimiter)
    samples = []
    for row in rows:
        a, b = _number(row.get(lat_col)), _number(row.get(lon_col))
        if a is not None and b is not None:
            country = clean_label(row.get(country_col)) if country_col else None
            samples.append(Sample(row["__where__"], a, b, country))
    evidence = weigh(samples)
    if evidence.only_named and evidence.only_swapped:
        first, other = evidence.only_swapped[0], evidence.only_named[0]
        raise DataError(
            f"{first.where}: field '{lat_col}': {first.a} is not a latitude, so this row has its coordinates "
            f"swapped, while {other.where}: field '{lon_col}': {other.b} is not one either, so that row has "
            f"them as named: the rows of this file disagree; fix the file (or split it) before converting"
        )
    named = f"'{lat_col}' holds the latitudes and '{lon_col}' the longitudes"
    swapped = f"'{lon_col}' holds the latitudes and '{lat_col}' the longitudes"
    verdict = evidence.verdict()
    certain = bool(evidence.only_named or evidence.only_swapped)
    if explicit is not None:
        flag = "--swap_latlon" if explicit else "--no_swap_latlon"
        if certain and verdict != explicit:
            lat_field, lon_field = (lon_col, lat_col) if explicit else (lat_col, lon_col)
            bad = (evidence.only_named if explicit else evidence.only_swapped)[0]
            raise _impossible(bad, flag, lat_field, lon_field)
        note = f"coordinates: {swapped if explicit else named}, as {flag} says"
        if verdict is not None and verdict != explicit:
            note += f"; warning: the values say otherwise ({evidence.describe(lat_col, lon_col)})"
        return Decision(explicit, note)

    layout = known_layout(header, path, delimiter)
    if layout is not None and {lat_col, lon_col} == {layout.lat_in, layout.lon_in}:
        layout_swap = lat_col != layout.lat_in
        if verdict is not None and verdict != layout_swap:
            raise _ask(path, lat_col, lon_col, f"the file looks like {layout.name}, but its values say the other "
                       f"order ({evidence.describe(lat_col, lon_col)})")
        action = "swapping them, --no_swap_latlon overrides" if layout_swap else "--swap_latlon overrides"
        return Decision(layout_swap, f"coordinates: {swapped if layout_swap else named}: the file is {layout.name}; "
                        f"{evidence.describe(lat_col, lon_col)}; {action}")
    if verdict is None:
        raise _ask(path, lat_col, lon_col, evidence.describe(lat_col, lon_col))
    action = "swapping them, --no_swap_latlon overrides" if verdict else "--swap_latlon overrides"
    return Decision(verdict, f"coordinates: {swapped if verdict else named} ({evidence.describe(lat_col, lon_col)}); "
                    f"{action}")
