"""Geohashes against published vectors and the prefix arithmetic built on them."""

import numpy as np
import pytest

from open_r1.geo import common_prefix_len, geohash_encode, geohash_prefix_lengths


@pytest.mark.parametrize(
    "lat, lon, precision, expected",
    [
        (42.6, -5.6, 5, "ezs42"),  # Wikipedia's worked example
        (57.64911, 10.40744, 11, "u4pruydqqvj"),  # Wikipedia / geohash.org example
        (-25.382708, -49.265506, 8, "6gkzwgjz"),  # Curitiba, from the geohash.org demo
    ],
)
def test_published_vectors(lat, lon, precision, expected):
    assert geohash_encode(lat, lon, precision) == expected


def test_common_prefix_len():
    assert common_prefix_len("u4pruyd", "u4pruyd") == 7
    assert common_prefix_len("u4pruyd", "u4pqxyz") == 3
    assert common_prefix_len("ezs42", "u4pru") == 0
    assert common_prefix_len("", "abc") == 0
    assert common_prefix_len("abc", "ab") == 2


def test_batch_prefix_lengths_match_the_strings():
    rng = np.random.default_rng(7)
    lat1, lon1 = rng.uniform(-90, 90, 400), rng.uniform(-180, 180, 400)
    near = rng.random(400) < 0.5  # half the second points lie close to the first, so prefixes vary
    lat2 = np.where(near, np.clip(lat1 + rng.normal(0, 0.05, 400), -90, 90), rng.uniform(-90, 90, 400))
    lon2 = np.where(near, np.clip(lon1 + rng.normal(0, 0.05, 400), -180, 180), rng.uniform(-180, 180, 400))
    for precision in (1, 6, 12):
        got = geohash_prefix_lengths(lat1, lon1, lat2, lon2, precision)
        expected = [common_prefix_len(geohash_encode(a, b, precision), geohash_encode(c, d, precision))
                    for a, b, c, d in zip(lat1, lon1, lat2, lon2)]
        assert got.tolist() == expected
    assert len(set(geohash_prefix_lengths(lat1, lon1, lat2, lon2, 6).tolist())) > 3


def test_batch_prefix_lengths_mark_missing_points():
    got = geohash_prefix_lengths([np.nan, 10.0, 95.0], [0.0, 10.0, 0.0], [1.0, 10.0, 1.0], [1.0, 10.0, 1.0], 6)
    assert got.tolist() == [-1, 6, -1]
