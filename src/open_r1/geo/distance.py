"""Great-circle distance and the GeoGuessr score, vectorised so a whole batch costs one numpy call."""

from __future__ import annotations

import numpy as np

__all__ = ["EARTH_RADIUS_KM", "GEOGUESSR_MAX", "GEOGUESSR_SCALE_KM", "geoguessr_score", "haversine_km"]

# IUGG mean Earth radius R1 = (2a + b) / 3 of WGS84. A sphere of this radius stays within about 0.6% of the
# WGS84 geodesic everywhere, which is far below the errors a geolocation reward has to tell apart.
EARTH_RADIUS_KM = 6371.0088

# GeoGuessr's scoring curve as fitted by PIGEON and used by OSV-5M: 5000 points at 0 km, 1/e of that at 1492.7 km.
GEOGUESSR_MAX = 5000.0
GEOGUESSR_SCALE_KM = 1492.7


def haversine_km(lat1, lon1, lat2, lon2, radius_km: float = EARTH_RADIUS_KM):
    """Great-circle distance in km on a sphere; scalars or arrays (broadcast), NaN in, NaN out.

    The haversine term is clipped to [0, 1] so rounding near antipodes cannot turn a valid distance into NaN (as
    the `haversine` package's arcsin form can).

    Args:
        lat1, lon1: The first points, in degrees.
        lat2, lon2: The second points, in degrees.
        radius_km: The sphere's radius: EARTH_RADIUS_KM unless a metric's definition fixes another (OSV-5M's 6371).

    Returns:
        The distances in km, shaped as the broadcast inputs.
    """
    phi1, lam1, phi2, lam2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((phi2 - phi1) * 0.5) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin((lam2 - lam1) * 0.5) ** 2
    km = (2.0 * radius_km) * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return float(km) if km.ndim == 0 else km


def geoguessr_score(km):
    """GeoGuessr points for a guess `km` away: 5000 * exp(-km / 1492.7). Scalars or arrays."""
    points = GEOGUESSR_MAX * np.exp(-np.asarray(km, dtype=np.float64) / GEOGUESSR_SCALE_KM)
    return float(points) if points.ndim == 0 else points
