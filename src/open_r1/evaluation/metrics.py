"""The numbers geolocation papers report, computed from prediction records (one per image).

Conventions, chosen so a run can sit in the same table as published ones:

- Accuracy at 1 / 25 / 200 / 750 / 2500 km (street, city, region, country, continent) counts an image when
  its great-circle error is at most the threshold. Rates are percentages of all images.
- An unparseable answer is never skipped: it is wrong at every threshold and at every place level, scores 0
  GeoGuessr points, and enters the mean and median error as FAILURE_KM = pi * 6371.0088 km (about 20,015 km),
  the largest distance any parsed answer can have on the sphere the distances use, so no failure can look
  better than a guess.
- Country / region / city accuracy follow OSV-5M: the predicted coordinates are reverse-geocoded with the same
  offline geocoder that labels the truth, and names are compared; a region counts only inside the right
  country, a city only inside the right country and region. Images whose true label is missing at a level
  are left out of that level's denominator (as OSV-5M does with its "nan" labels).
- With several guesses per image, the headline numbers are those of the top-ranked guess (see
  `rank_guesses`), `best_of_k_*` those of the closest guess, and `top5_weighted_score` is defined in
  `top5_weighted_score`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from open_r1.geo import EARTH_RADIUS_KM, GEOGUESSR_SCALE_KM, geoguessr_score, haversine_km, same_country, same_place

THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)
THRESHOLD_NAMES = {1.0: "street", 25.0: "city", 200.0: "region", 750.0: "country", 2500.0: "continent"}
FAILURE_KM = math.pi * EARTH_RADIUS_KM  # 20015.1 km: half a great circle
TOP5_WEIGHTS: tuple[float, ...] = (1.0, 0.6, 0.4, 0.25, 0.15)
PLACE_LEVELS = ("country", "region", "city")


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


def distance_metrics(errors_km: Sequence[float], parsed: Sequence[bool], prefix: str = "") -> dict[str, float]:
    """Accuracy at each threshold (%), mean and median error (km) and mean GeoGuessr points.

    `errors_km` must already hold FAILURE_KM for unparsed guesses; `parsed` makes sure a failure is wrong at
    every threshold whatever its error value.
    """
    errors = np.asarray(errors_km, dtype=np.float64)
    ok = np.asarray(parsed, dtype=bool)
    if errors.size == 0:
        raise ValueError("no predictions to score")
    out = {f"{prefix}{accuracy_key(t)}": 100.0 * float(np.mean(ok & (errors <= t))) for t in THRESHOLDS_KM}
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


def rank_guesses(lats: Sequence[float | None], lons: Sequence[float | None]) -> list[int]:
    """Order of k sampled guesses, most supported first: the model's mode comes first.

    A guess's support is the sum over all parsed guesses (itself included) of exp(-d / 1492.7 km), the
    GeoGuessr kernel, so guesses that many samples agree on rank high. Unparsed guesses (None) come last;
    ties keep sampling order. Samples are exchangeable, so sampling order alone would carry no ranking.
    """
    parsed = [i for i, (a, b) in enumerate(zip(lats, lons)) if a is not None and b is not None]
    if not parsed:
        return list(range(len(lats)))
    lat = np.array([lats[i] for i in parsed], dtype=np.float64)
    lon = np.array([lons[i] for i in parsed], dtype=np.float64)
    distances = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    support = np.exp(-np.asarray(distances) / GEOGUESSR_SCALE_KM).sum(axis=1)
    order = sorted(range(len(parsed)), key=lambda j: (-round(float(support[j]), 9), parsed[j]))
    ranked = [parsed[j] for j in order]
    unparsed = sorted(set(range(len(lats))) - set(parsed))
    return ranked + unparsed


def top5_weighted_score(ranked_points: Sequence[float]) -> float:
    """Top-5 weighted GeoGuessr score of one image, in points out of 5000.

    With s_i the GeoGuessr points (5000 * exp(-km / 1492.7); 0 for an unparseable guess) of the guess ranked
    i-th, and w = (1, 0.6, 0.4, 0.25, 0.15):

        score = sum_{i=1..5} w_i * s_i / sum_{i=1..5} w_i        (sum of weights = 2.4)

    Positions beyond the guesses given score 0, so fewer than five guesses can never reach 5000, and guesses
    beyond the fifth are ignored. Five exact guesses score 5000; one exact guess ranked first and four
    failures score 5000 / 2.4 = 2083.3.
    """
    points = list(ranked_points)[: len(TOP5_WEIGHTS)]
    return sum(w * s for w, s in zip(TOP5_WEIGHTS, points)) / sum(TOP5_WEIGHTS)


def compute_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every metric of a run from its prediction records (see `records.build_record` for their fields)."""
    if not records:
        raise ValueError("no predictions to score")
    parsed = [bool(r["parsed"]) for r in records]
    errors = [float(r["error_km"]) for r in records]
    metrics: dict[str, Any] = {"num_images": len(records)}
    metrics.update(distance_metrics(errors, parsed))
    metrics.update(place_accuracy(records))
    metrics["parse_failure_rate"] = 100.0 * (1.0 - float(np.mean(parsed)))
    num_guesses = max(len(r.get("guesses") or ()) for r in records) or 1
    metrics["num_guesses"] = num_guesses
    if num_guesses > 1:
        best_errors, best_parsed, weighted = [], [], []
        for record in records:
            guesses = record["guesses"]
            ok = [g for g in guesses if g["parsed"]]
            best_parsed.append(bool(ok))
            best_errors.append(min((float(g["error_km"]) for g in ok), default=FAILURE_KM))
            weighted.append(top5_weighted_score([float(g["geoguessr"]) for g in guesses]))
        metrics.update(distance_metrics(best_errors, best_parsed, prefix="best_of_k/"))
        metrics["top5_weighted_score"] = float(np.mean(weighted))
    metrics["failure_km"] = FAILURE_KM
    return metrics
