"""Geohash helpers. A geohash prefix is a nested grid cell, so the length of the prefix two points share is a
coarse, scale-free closeness score (with the known blind spot that neighbours across a cell edge share less).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pygeohash

__all__ = ["common_prefix_len", "geohash_encode", "geohash_prefix_lengths"]


def geohash_encode(lat: float, lon: float, precision: int = 12) -> str:
    """Geohash of a point with `precision` characters (1-12), via pygeohash's C codec."""
    return pygeohash.encode(float(lat), float(lon), int(precision))


_encode_cached = lru_cache(maxsize=65536)(geohash_encode)  # true labels repeat once per generation in a group


def common_prefix_len(a: str, b: str) -> int:
    """Number of leading characters two geohashes share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def geohash_prefix_lengths(lat1, lon1, lat2, lon2, precision: int) -> np.ndarray:
    """Shared geohash prefix length of each pair of points.

    Args:
        lat1, lon1: The first points (the answers), in degrees.
        lat2, lon2: The second points (the labels, which repeat across a GRPO group, so their hashes are cached).
        precision: The geohash length compared.

    Returns:
        An int array of shared prefix lengths in [0, precision]; -1 where a point is missing or invalid.
    """
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=np.float64).ravel() for v in (lat1, lon1, lat2, lon2))
    out = np.full(lat1.shape, -1, dtype=np.int64)
    valid = (np.abs(lat1) <= 90) & (np.abs(lon1) <= 180) & (np.abs(lat2) <= 90) & (np.abs(lon2) <= 180)
    encode, p = pygeohash.encode, int(precision)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    first = [encode(a, b, p) for a, b in zip(lat1[idx].tolist(), lon1[idx].tolist())]
    second = [_encode_cached(c, d, p) for c, d in zip(lat2[idx].tolist(), lon2[idx].tolist())]
    # Compare the hashes as byte matrices: the first differing column is the shared prefix length.
    same = np.array(first, dtype=f"S{p}").view(np.uint8).reshape(-1, p) == \
        np.array(second, dtype=f"S{p}").view(np.uint8).reshape(-1, p)
    out[idx] = np.where(same.all(axis=1), p, same.argmin(axis=1))
    return out
