"""Distances against Karney's WGS84 geodesics (geographiclib), which nothing in geo-r reuses."""

import math

import numpy as np
import pytest
from geographiclib.geodesic import Geodesic

from open_r1.geo import EARTH_RADIUS_KM, geoguessr_score, haversine_km

PAIRS = [
    ((38.7167, -9.1333), (35.6895, 139.6917)),  # Lisbon - Tokyo
    ((40.7143, -74.0060), (-33.8679, 151.2073)),  # New York - Sydney
    ((0.0, 0.0), (0.0, 180.0)),  # antipodes on the equator
    ((30.0, 20.0), (-30.0, -160.0)),  # antipodes off the equator
    ((89.9, 0.0), (-89.9, 0.0)),  # near pole to near pole
    ((90.0, 0.0), (-90.0, 0.0)),  # pole to pole
    ((90.0, 45.0), (90.0, -135.0)),  # the same pole written with two longitudes
    ((-16.8, 179.9), (-16.8, -179.9)),  # across the antimeridian in Fiji
    ((64.1355, -21.8954), (78.2233, 15.6469)),  # Reykjavik - Longyearbyen
    ((-54.8, -68.3), (71.29, -156.79)),  # Ushuaia - Utqiagvik
]


def geodesic_km(a, b):
    return Geodesic.WGS84.Inverse(a[0], a[1], b[0], b[1])["s12"] / 1000.0


@pytest.mark.parametrize("a, b", PAIRS)
def test_agrees_with_wgs84_geodesic(a, b):
    reference = geodesic_km(a, b)
    ours = haversine_km(a[0], a[1], b[0], b[1])
    if reference < 1e-6:
        assert ours == pytest.approx(0.0, abs=1e-6)
    else:
        assert abs(ours - reference) / reference < 0.006


def test_random_pairs_within_sphere_error():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-90, 90, (2, 300))
    lon1, lon2 = rng.uniform(-180, 180, (2, 300))
    ours = haversine_km(lat1, lon1, lat2, lon2)
    reference = np.array([geodesic_km((a, b), (c, d)) for a, b, c, d in zip(lat1, lon1, lat2, lon2)])
    long_pairs = reference > 100
    assert np.all(np.abs(ours - reference)[long_pairs] / reference[long_pairs] < 0.006)


def test_zero_and_symmetry():
    assert haversine_km(38.7, -9.1, 38.7, -9.1) == 0.0
    assert haversine_km(10.0, 20.0, -5.0, 100.0) == haversine_km(-5.0, 100.0, 10.0, 20.0)


def test_antipodes_are_half_a_great_circle_not_nan():
    km = haversine_km(np.array([30.0, 0.0, 12.345]), np.array([20.0, 0.0, -98.7]),
                      np.array([-30.0, 0.0, -12.345]), np.array([-160.0, 180.0, 81.3]))
    assert np.all(np.isfinite(km))
    assert km == pytest.approx(np.full(3, math.pi * EARTH_RADIUS_KM), abs=0.01)  # within 10 m


def test_vectorised_broadcasts_and_propagates_nan():
    km = haversine_km(np.array([0.0, np.nan, 10.0]), np.array([0.0, 0.0, 10.0]), 0.0, 1.0)
    assert km.shape == (3,)
    assert np.isnan(km[1])
    assert km[0] == pytest.approx(2 * math.pi * EARTH_RADIUS_KM / 360, rel=1e-12)
    assert isinstance(haversine_km(0.0, 0.0, 1.0, 1.0), float)


def test_geoguessr_curve():
    assert geoguessr_score(0.0) == 5000.0
    assert geoguessr_score(1492.7) == pytest.approx(5000 / math.e)
    scores = geoguessr_score(np.array([0.0, 25.0, 750.0, 20000.0]))
    assert np.all(np.diff(scores) < 0) and scores[-1] < 1.0
