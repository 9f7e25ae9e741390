"""The numbers geolocation papers report, computed from prediction records (one per image).

Two sets, chosen with `--metrics` and named in `metrics.json` under `metric_set`: `geo_r` (accuracy within 1 / 25
/ 200 / 750 / 2500 km, country/region/city accuracy against the labels of `open_r1.geo.labels`, GeoGuessr score)
and `osv5m` (OSV-5M's definitions exactly). In both an unparseable answer is never skipped: it is wrong
everywhere and counts as half a great circle (`FAILURE_KM`), so no failure can look better than a guess. With
several guesses the headline is the top-ranked one and `best_of_k/*` the closest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from open_r1.configs import METRIC_SETS, TOP5_LEVELS
from open_r1.errors import ArgumentError
from open_r1.geo import (
    EARTH_RADIUS_KM,
    GEOGUESSR_SCALE_KM,
    geoguessr_score,
    haversine_km,
    reverse_geocode_arrays,
    same_country,
    same_place,
)
from open_r1.geo.geocode import reverse_geocoder_search

THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)
THRESHOLD_NAMES = {1.0: "street", 25.0: "city", 200.0: "region", 750.0: "country", 2500.0: "continent"}
FAILURE_KM = math.pi * EARTH_RADIUS_KM  # 20015.1 km: half a great circle
PLACE_LEVELS = ("country", "region", "city")

OSV5M_EARTH_RADIUS_KM = 6371.0  # metrics/utils.py: `distance = 6371 * c`
OSV5M_FAILURE_KM = math.pi * OSV5M_EARTH_RADIUS_KM
OSV5M_LEVELS = ("country", "region", "subregion", "city")  # OSV-5M's country, region, sub-region, city

# The competition's top-5 rule (the StreetCLIP GeoGuessr competition seed): credit by the position of the first
# correct guess, and a final score that mixes it with the mean distance.
TOP5_CREDIT: tuple[float, ...] = (1.0, 0.6, 0.4, 0.25, 0.15)
TOP5_CLASSIFICATION_WEIGHT = 0.7
TOP5_DISTANCE_SCALE_KM = 5000.0

Place = dict[str, str | None]


def accuracy_key(threshold_km: float) -> str:
    """Metric name of an accuracy threshold: 25.0 -> 'acc@25km'."""
    return f"acc@{threshold_km:g}km"


def error_km(pred_lat: float | None, pred_lon: float | None, true_lat: float, true_lon: float) -> float:
    """Great-circle error of a guess, or FAILURE_KM when there is no guess."""
    if pred_lat is None or pred_lon is None:
        return FAILURE_KM
    return float(haversine_km(pred_lat, pred_lon, true_lat, true_lon))


def guess_points(km: float, parsed: bool) -> float:
    """GeoGuessr points of one guess: 5000 * exp(-km / 1492.7), and 0 for an unparseable answer."""
    return float(geoguessr_score(km)) if parsed else 0.0


def geocoded_places(lats: Sequence[float | None], lons: Sequence[float | None]) -> list[Place | None]:
    """Country code, region and city of the nearest GeoNames place to each point (None for a missing point):
    where a prediction falls, for the `geo_r` place levels."""
    lat = [math.nan if v is None else v for v in lats]
    lon = [math.nan if v is None else v for v in lons]
    countries, regions, cities = reverse_geocode_arrays(lat, lon)
    return [
        None if c is None else {"country": c or None, "region": r or None, "city": t or None}
        for c, r, t in zip(countries.tolist(), regions.tolist(), cities.tolist())
    ]


def distance_metrics(errors_km: Sequence[float], parsed: Sequence[bool], prefix: str = "",
                     strict: bool = False) -> dict[str, float]:
    """Accuracy at each threshold (%), mean and median error (km) and mean GeoGuessr points.

    Args:
        errors_km: Each image's error, already the failure distance for an unparsed guess.
        parsed: Whether each guess parsed; a failure is wrong at every threshold whatever its error value.
        prefix: Put before every key (`best_of_k/`, for instance).
        strict: Count an image at threshold t when its error is < t (`osv5m`: metrics/distance_based.py,
            `haversine_distance < acc`) instead of <= t (`geo_r`, GeoCLIP's `gd <= dis`).

    Returns:
        `{prefix}acc@<t>km` for each threshold t, `{prefix}mean_km`, `{prefix}median_km` and `{prefix}geoguessr`
        (5000 * exp(-km / 1492.7), 0 for a failure).
    """
    errors = np.asarray(errors_km, dtype=np.float64)
    ok = np.asarray(parsed, dtype=bool)
    if errors.size == 0:
        raise ValueError("no predictions to score")
    within = (lambda t: errors < t) if strict else (lambda t: errors <= t)
    out = {f"{prefix}{accuracy_key(t)}": 100.0 * float(np.mean(ok & within(t))) for t in THRESHOLDS_KM}
    out[f"{prefix}mean_km"] = float(errors.mean())
    out[f"{prefix}median_km"] = float(np.median(errors))
    out[f"{prefix}geoguessr"] = float(np.mean(np.where(ok, geoguessr_score(errors), 0.0)))
    return out


def place_matches(pred: Mapping[str, str | None] | None, true: Mapping[str, str | None]) -> dict[str, bool | None]:
    """Per level, whether the predicted place is the true one (None: the truth has no label at that level).

    Country: same ISO code or name (`same_country`). Region: right country and same normalised name. City:
    right country and region and same normalised name.
    """
    pred = pred or {}
    country = same_country(pred.get("country"), true.get("country"))
    region = country and same_place(pred.get("region"), true.get("region"))
    city = region and same_place(pred.get("city"), true.get("city"))
    result = {"country": country, "region": region, "city": city}
    return {level: (result[level] if true.get(level) else None) for level in PLACE_LEVELS}


def place_accuracy(records: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Country / region / city accuracy (%) over the images labelled at each level (None if none is)."""
    hits: dict[str, list[bool]] = {level: [] for level in PLACE_LEVELS}
    for record in records:
        for level, match in place_matches(record.get("pred_place"), record["true_place"]).items():
            if match is not None:
                hits[level].append(match)
    return {f"{level}_acc": (100.0 * float(np.mean(h)) if h else None) for level, h in hits.items()}


# --- OSV-5M ---------------------------------------------------------------------------------------------------

def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def osv5m_errors_km(pred_lats: Sequence[float | None], pred_lons: Sequence[float | None],
                    true_lats: Sequence[float], true_lons: Sequence[float]) -> np.ndarray:
    """OSV-5M's distance: haversine on a sphere of R = 6371 km (metrics/utils.py, `haversine`: 2 R
    atan2(sqrt(a), sqrt(1 - a)), the same number as our 2 R asin(sqrt(a))); OSV5M_FAILURE_KM (pi * 6371 km)
    for a missing guess (OSV-5M's models always answer; a failure is ours to score)."""
    km = haversine_km(_floats(pred_lats), _floats(pred_lons), _floats(true_lats), _floats(true_lons),
                      radius_km=OSV5M_EARTH_RADIUS_KM)
    return np.where(np.isnan(km), OSV5M_FAILURE_KM, km)


def osv5m_place_keys(lats: Sequence[float | None], lons: Sequence[float | None],
                     truth: bool = False) -> dict[str, np.ndarray]:
    """OSV-5M's place of each point at every level, as the keys its metric compares (metrics/utils.py,
    `reverse`): from `reverse_geocoder.search` (`geo.geocode.reverse_geocoder_search`, the package's own
    degree-space nearest place), country = cc, region = admin1_cc, sub-region = admin2_admin1_cc, city =
    name_admin2_admin1_cc; equal keys are a hit, so each level also requires the levels above it.

    A missing point has no key (None). With `truth`, a level whose own field is empty is None too: OSV-5M's
    "nan" label, left out of that level's denominator; a prediction keeps its key whatever is empty.
    """
    cc, admin1, admin2, name = (column.tolist() for column in reverse_geocoder_search(_floats(lats), _floats(lons)))
    keys: dict[str, list[str | None]] = {level: [] for level in OSV5M_LEVELS}
    for c, a1, a2, n in zip(cc, admin1, admin2, name):
        if c is None:
            for level in OSV5M_LEVELS:
                keys[level].append(None)
            continue
        parts = {"country": [c], "region": [a1, c], "subregion": [a2, a1, c], "city": [n, a2, a1, c]}
        for level, fields in parts.items():
            keys[level].append(None if truth and not fields[0] else "_".join(fields))
    return {level: np.array(values, dtype=object) for level, values in keys.items()}


def osv5m_place_accuracy(pred: Mapping[str, np.ndarray], true: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """Accuracy (%) per OSV-5M level over the images whose truth has that level (metrics/distance_based.py:
    hits / count of non-"nan" truth labels); None if no image has it."""
    out = {}
    for level in OSV5M_LEVELS:
        known = np.not_equal(true[level], None)
        hits = known & (pred[level] == true[level])
        out[f"{level}_acc"] = 100.0 * float(hits.sum() / known.sum()) if known.any() else None
    return out


# --- several guesses ------------------------------------------------------------------------------------------

def guess_support(lats: Sequence[float | None], lons: Sequence[float | None]) -> list[float | None]:
    """Support of each of k sampled guesses: the sum over all parsed guesses (itself included) of
    exp(-d / 1492.7 km), the GeoGuessr kernel, so a guess that many samples agree on has a high support (at most k).
    Unparsed guesses (None) have none."""
    parsed = [i for i, (a, b) in enumerate(zip(lats, lons)) if a is not None and b is not None]
    support: list[float | None] = [None] * len(lats)
    if not parsed:
        return support
    lat = np.array([lats[i] for i in parsed], dtype=np.float64)
    lon = np.array([lons[i] for i in parsed], dtype=np.float64)
    distances = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    for i, value in zip(parsed, np.exp(-np.asarray(distances) / GEOGUESSR_SCALE_KM).sum(axis=1)):
        support[i] = float(value)
    return support


def rank_guesses(lats: Sequence[float | None], lons: Sequence[float | None]) -> list[int]:
    """Order of k sampled guesses, most supported first (`guess_support`): the model's mode comes first.

    Unparsed guesses (None) come last; ties keep sampling order. Samples are exchangeable, so sampling order
    alone would carry no ranking.
    """
    support = guess_support(lats, lons)
    parsed = [i for i, value in enumerate(support) if value is not None]
    ranked = sorted(parsed, key=lambda i: (-round(support[i], 9), i))
    return ranked + [i for i, value in enumerate(support) if value is None]


def top5_credit(correct: Sequence[bool]) -> float:
    """Classification credit of one image from its ranked guesses: the credit of the position of the FIRST
    correct guess, positions 1-5 earning 1.0 / 0.6 / 0.4 / 0.25 / 0.15 (the StreetCLIP GeoGuessr competition's
    rule), 0 when none of the first five is correct. Guesses beyond the fifth are ignored."""
    for credit, ok in zip(TOP5_CREDIT, correct):
        if ok:
            return credit
    return 0.0


def top5_weighted_score(classification: float, mean_km: float) -> float:
    """The competition's final score: 0.7 * classification + 0.3 * max(0, 1 - mean_km / 5000).

    `classification` is the mean `top5_credit` over the images (in [0, 1]) and `mean_km` the mean error of the
    top-ranked guesses, failures included at the set's failure distance; the result is in [0, 1].
    """
    distance_part = max(0.0, 1.0 - mean_km / TOP5_DISTANCE_SCALE_KM)
    return TOP5_CLASSIFICATION_WEIGHT * classification + (1.0 - TOP5_CLASSIFICATION_WEIGHT) * distance_part


def _top5_guesses(records: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[float | None], list[float | None]]:
    """(record index, lat, lon) of the first five ranked guesses of every record, flattened."""
    owner, lats, lons = [], [], []
    for i, record in enumerate(records):
        for guess in list(record.get("guesses") or ())[: len(TOP5_CREDIT)]:
            owner.append(i)
            lats.append(guess["lat"] if guess["parsed"] else None)
            lons.append(guess["lon"] if guess["parsed"] else None)
    return owner, lats, lons


def _top5_classification(correct_by_record: list[list[bool]], labelled: list[bool]) -> float | None:
    credits = [top5_credit(correct) for correct, known in zip(correct_by_record, labelled) if known]
    return float(np.mean(credits)) if credits else None


# --- everything -----------------------------------------------------------------------------------------------

def compute_metrics(records: Sequence[Mapping[str, Any]], metric_set: str = "geo_r",
                    top5_level: str = "region") -> dict[str, Any]:
    """Every metric of a run from its prediction records. Everything is recomputed from the records' coordinates, so
    a finished run can be scored with either set without generating again.

    Args:
        records: The prediction records (see `records.build_records` for their fields).
        metric_set: 'geo_r' or 'osv5m' (see the module docstring).
        top5_level: The place level ('region', i.e. the state; 'country'; 'city') a guess must get right to earn
            credit in the top-5 weighted score, judged by the set's own place definition; images whose truth is
            unknown at that level are left out of the classification mean.

    Returns:
        The metrics by name, with `metric_set` naming the set.
    """
    if metric_set not in METRIC_SETS:
        raise ArgumentError(f"--metrics must be one of {', '.join(METRIC_SETS)}, got {metric_set!r}")
    if top5_level not in TOP5_LEVELS:
        raise ArgumentError(f"--top5_level must be one of {', '.join(TOP5_LEVELS)}, got {top5_level!r}")
    if not records:
        raise ValueError("no predictions to score")
    osv5m = metric_set == "osv5m"
    parsed = [bool(r["parsed"]) for r in records]
    true_lats, true_lons = [r["true_lat"] for r in records], [r["true_lon"] for r in records]
    if osv5m:
        errors = osv5m_errors_km([r["pred_lat"] for r in records], [r["pred_lon"] for r in records], true_lats,
                                 true_lons).tolist()
        true_keys = osv5m_place_keys(true_lats, true_lons, truth=True)
        pred_keys = osv5m_place_keys([r["pred_lat"] for r in records], [r["pred_lon"] for r in records])
    else:
        errors = [float(r["error_km"]) for r in records]
    metrics: dict[str, Any] = {"metric_set": metric_set, "num_images": len(records)}
    metrics.update(distance_metrics(errors, parsed, strict=osv5m))
    metrics.update(osv5m_place_accuracy(pred_keys, true_keys) if osv5m else place_accuracy(records))
    metrics["parse_failure_rate"] = 100.0 * (1.0 - float(np.mean(parsed)))
    num_guesses = max(len(r.get("guesses") or ()) for r in records) or 1
    metrics["num_guesses"] = num_guesses
    if num_guesses > 1:
        failure = OSV5M_FAILURE_KM if osv5m else FAILURE_KM
        best_errors, best_parsed = [], []
        for record in records:
            ok = [g for g in record["guesses"] if g["parsed"]]
            best_parsed.append(bool(ok))
            if osv5m:
                km = osv5m_errors_km([g["lat"] for g in ok], [g["lon"] for g in ok], [record["true_lat"]] * len(ok),
                                     [record["true_lon"]] * len(ok)).tolist()
            else:
                km = [float(g["error_km"]) for g in ok]
            best_errors.append(min(km, default=failure))
        metrics.update(distance_metrics(best_errors, best_parsed, prefix="best_of_k/", strict=osv5m))

        owner, lats, lons = _top5_guesses(records)
        correct: list[list[bool]] = [[] for _ in records]
        if osv5m:
            guess_keys = osv5m_place_keys(lats, lons)[top5_level]
            truth = true_keys[top5_level]
            labelled = [t is not None for t in truth.tolist()]
            for i, key in zip(owner, guess_keys.tolist()):
                correct[i].append(key is not None and key == truth[i])
        else:
            labelled = [bool(r["true_place"].get(top5_level)) for r in records]
            for i, place in zip(owner, geocoded_places(lats, lons)):
                correct[i].append(bool(place_matches(place, records[i]["true_place"])[top5_level]))
        classification = _top5_classification(correct, labelled)
        metrics["top5_level"] = top5_level
        metrics["top5_classification"] = classification
        metrics["top5_weighted_score"] = (None if classification is None
                                          else top5_weighted_score(classification, metrics["mean_km"]))
    metrics["failure_km"] = OSV5M_FAILURE_KM if osv5m else FAILURE_KM
    return metrics
