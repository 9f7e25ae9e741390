"""Geography for geo-r's rewards, data and evaluation: distances, offline reverse geocoding, geohashes and
place-name comparison. Pure numpy/scipy and nothing of geo-r outside it; never imports torch, transformers or trl, so it is cheap to use in
DataLoader workers, evaluation scripts and tests.
"""

from open_r1.geo.distance import EARTH_RADIUS_KM, GEOGUESSR_SCALE_KM, geoguessr_score, haversine_km
from open_r1.geo.geocode import Place, nearest_places, reverse_geocode, reverse_geocode_arrays
from open_r1.geo.geohash import common_prefix_len, geohash_encode, geohash_prefix_lengths
from open_r1.geo.names import (
    continent_of,
    country_code,
    country_name,
    normalise_name,
    same_country,
    same_place,
)

__all__ = [
    "EARTH_RADIUS_KM",
    "GEOGUESSR_SCALE_KM",
    "Place",
    "common_prefix_len",
    "continent_of",
    "country_code",
    "country_name",
    "geoguessr_score",
    "geohash_encode",
    "geohash_prefix_lengths",
    "haversine_km",
    "nearest_places",
    "normalise_name",
    "reverse_geocode",
    "reverse_geocode_arrays",
    "same_country",
    "same_place",
]
