"""THE rule that names the country, region and city of a labelled point: one resolver for every place that needs
ground truth (the converters, the SFT targets, the hierarchy reward, the evaluation), so a row means the same
place wherever it is read. A label the row gives always wins and is never checked against the coordinates; a
missing one comes from the nearest GeoNames place (for region and city, in the row's own country, so a point near
a border is not named after a town across it), within REGION_KM or CITY_KM so the gazetteer cannot invent places
for a photo at sea or in a desert. `data.validate` is where labels get checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from open_r1.geo.geocode import nearest_places, nearest_places_in, place_fields
from open_r1.geo.names import country_code

__all__ = ["CITY_KM", "MISSING_TEXTS", "REGION_KM", "PlaceLabels", "clean_label", "resolve_place", "resolve_places"]

REGION_KM = 300.0
CITY_KM = 50.0


# What tables and dataframes write for an empty cell (pandas: NaN, None, <NA>, NaT; spreadsheets: #N/A): a missing
# label, never the place name "nan". "NA" is not among them: it is Namibia's ISO code (pandas' own default list
# turns Namibia into a missing value). Every reader in `data/` uses this same definition.
MISSING_TEXTS = frozenset({"", "nan", "-nan", "none", "null", "<na>", "n/a", "#n/a", "nat"})


def clean_label(value: Any) -> str | None:
    """A label as the resolver reads it: stripped text, or None when missing (None, NaN, MISSING_TEXTS)."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return None if text.lower() in MISSING_TEXTS else text


def is_missing(value: Any) -> bool:
    """True for None, NaN and the texts that stand for an empty cell (`MISSING_TEXTS`, any case; not "NA",
    Namibia's code): what every reader and the ground truth treat as no label."""
    return clean_label(value) is None


@dataclass(frozen=True)
class PlaceLabels:
    """Resolved labels of a batch of rows: object arrays of str, None where unknown.

    `country` holds ISO codes for recognised countries (labels that name no country stay as written), and
    `code` the ISO code alone (None where the country is unknown or unrecognised).
    """

    country: np.ndarray
    region: np.ndarray
    city: np.ndarray
    code: np.ndarray

    def __len__(self) -> int:
        return len(self.country)

    def row(self, i: int) -> tuple[str | None, str | None, str | None]:
        """(country, region, city) of row i."""
        return self.country[i], self.region[i], self.city[i]


def _map_distinct(func: Callable[[Any], Any], values: Sequence[Any]) -> np.ndarray:
    """Object array of func(v) for v in values, calling func once per distinct value (labels repeat: once per
    generation in a GRPO group, once per image of a city in a dataset)."""
    out = np.empty(len(values), dtype=object)
    try:
        table = {value: func(value) for value in set(values)}
        out[:] = [table[value] for value in values] if values else []
    except TypeError:  # an unhashable label (a list in a malformed row): no shortcut
        out[:] = [func(value) for value in values]
    return out


def _coordinates(values: Sequence[Any]) -> np.ndarray:
    """Floats, None -> NaN; a float array (a reward's label column) is taken as it is."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False).reshape(-1)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)


def _known(values: np.ndarray) -> np.ndarray:
    """Elementwise `is not None` of an object array."""
    return np.not_equal(values, None)


def _column(values: Sequence[Any] | None, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    if len(values) != n:
        raise ValueError(f"{len(values)} {name} labels for {n} coordinates")
    return _map_distinct(clean_label, list(values))


def resolve_places(
    lats: Sequence[Any],
    lons: Sequence[Any],
    countries: Sequence[Any] | None = None,
    regions: Sequence[Any] | None = None,
    cities: Sequence[Any] | None = None,
) -> PlaceLabels:
    """Country, region and city of each row by the module's rule: the row's labels win, and the nearest GeoNames
    place of the row's country fills the gaps within the caps.

    Args:
        lats, lons: One coordinate per row, in degrees; None, NaN or out of range fills nothing.
        countries, regions, cities: The rows' own labels, one per row; a column left out is missing everywhere.

    Returns:
        The resolved labels, one entry per row (`PlaceLabels`; None where unknown).
    """
    lat, lon = _coordinates(lats), _coordinates(lons)
    n = len(lat)
    if len(lon) != n:
        raise ValueError(f"{n} latitudes but {len(lon)} longitudes")
    country, region, city = (_column(v, n, name) for v, name in
                             ((countries, "country"), (regions, "region"), (cities, "city")))
    code = _map_distinct(country_code, country.tolist())
    country = np.where(_known(code), code, country)

    valid = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    need = valid & ~(_known(country) & _known(region) & _known(city))
    if need.any():
        rows = np.flatnonzero(need)
        # Rows repeat (a GRPO group, a city's photos): each distinct point is located once.
        points, inverse = np.unique(np.stack([lat[rows], lon[rows]], axis=1), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        index, km = nearest_places(points[:, 0], points[:, 1])
        index, km = index[inverse], km[inverse]
        (near_cc,) = place_fields(index, "country")

        take = ~_known(country[rows]) & (km <= REGION_KM)
        country[rows[take]] = code[rows[take]] = near_cc[take]

        # Region and city: the nearest place of the row's country, which is the nearest place overall unless
        # that one lies across a border.
        anchor = code[rows]
        across = _known(anchor) & (near_cc != anchor)
        if across.any():
            index[across], km[across] = nearest_places_in(lat[rows[across]], lon[rows[across]], anchor[across])
        inside = _known(anchor) & (index >= 0)
        near_region, near_city = place_fields(index, "region", "city")
        for column, near, cap in ((region, near_region, REGION_KM), (city, near_city, CITY_KM)):
            fill = inside & ~_known(column[rows]) & (km <= cap) & _known(near) & (near != "")
            column[rows[fill]] = near[fill]
    return PlaceLabels(country, region, city, code)


def resolve_place(lat: Any, lon: Any, country: Any = None, region: Any = None,
                  city: Any = None) -> tuple[str | None, str | None, str | None]:
    """`resolve_places` for one row: (country, region, city)."""
    return resolve_places([lat], [lon], [country], [region], [city]).row(0)
