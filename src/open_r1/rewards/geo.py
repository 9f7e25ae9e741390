"""Geolocation rewards for TRL's GRPOTrainer.

Shared conventions: a row without valid coordinates gets None (TRL leaves the reward out), except `format`, which
grades its structure; a completion without exactly one valid coordinate pair gets 0, and nothing raises on a bad
completion or row (they are counted instead); the batch is scored as numpy arrays; step metrics go through TRL's
`log_metric` hook under `geo/...`, and each completion's distance to its completions table as `distance_km`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from open_r1.geo import (
    country_code,
    geoguessr_score,
    geohash_prefix_lengths,
    haversine_km,
    reverse_geocode_arrays,
    same_place,
)
from open_r1.geo.distance import GEOGUESSR_MAX
from open_r1.geo.labels import PlaceLabels, resolve_places
from open_r1.rewards.batch import Batch, batch_of, log_once
from open_r1.rewards.format import FORMAT_WEIGHTS, FormatParts, format_parts
from open_r1.rewards.registry import register
from open_r1.schedules import anneal, training_progress

__all__ = [
    "format_reward",
    "geoguessr_reward",
    "geohash_reward",
    "georpiecewise_reward",
    "haversine_reward",
    "hierarchy_reward",
    "hierarchy_truth",
    "within_km_reward",
]

# Geo-R's piecewise-linear distance reward: full marks on the spot, half at 750 km, nothing past 20000 km.
PIECEWISE_KM = (0.0, 750.0, 3000.0, 20000.0)
PIECEWISE_REWARD = (1.0, 0.5, 0.2, 0.0)
NEAR_KM, REGIONAL_KM = 25.0, 750.0  # the "city" and "region" thresholds of the geolocation literature

MetricHook = Callable[[str, float], None] | None


# --- shared per-step quantities -----------------------------------------------------------------------------

def _truth(batch: Batch, kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True latitudes, longitudes and the mask of rows that have valid ones."""
    lat, lon = batch.truth(kwargs.get("lat"), kwargs.get("lon"))
    return lat, lon, ~np.isnan(lat)


def _log_answer_metrics(batch: Batch, labelled: np.ndarray, log_metric: MetricHook) -> None:
    if log_metric is None or "geo/parse_rate" in batch.logged:
        return
    parsed = np.array([a is not None for a in batch.answers], dtype=bool)
    log_once(batch, log_metric, "geo/parse_rate", parsed.mean() if len(parsed) else 0.0)
    log_once(batch, log_metric, "geo/bad_completions", np.count_nonzero(~parsed & labelled))
    log_once(batch, log_metric, "geo/unlabelled_rows", np.count_nonzero(~labelled))


def _distances(batch: Batch, kwargs: dict[str, Any], log_metric: MetricHook) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle error per completion (NaN without answer or label) and the labelled-row mask."""
    t_lat, t_lon, labelled = _truth(batch, kwargs)
    key = ("distance", id(t_lat))
    if key not in batch.cache:
        p_lat, p_lon = batch.coordinates
        km = haversine_km(p_lat, p_lon, t_lat, t_lon)
        batch.cache[key] = km
        _log_answer_metrics(batch, labelled, log_metric)
        _log_distance_metrics(batch, km, labelled, log_metric)
        log_extra = kwargs.get("log_extra")
        if log_extra is not None and "distance_km" not in batch.logged:  # a column of TRL's completions table
            batch.logged.add("distance_km")
            log_extra("distance_km", [None if np.isnan(v) else round(v, 3) for v in km.tolist()])
    return batch.cache[key], labelled


def _log_distance_metrics(batch: Batch, km: np.ndarray, labelled: np.ndarray, log_metric: MetricHook) -> None:
    if log_metric is None or not labelled.any():
        return
    scored = km[~np.isnan(km)]
    if scored.size:
        log_once(batch, log_metric, "geo/distance_km_mean", scored.mean())
        log_once(batch, log_metric, "geo/distance_km_median", np.median(scored))
    n = np.count_nonzero(labelled)  # completions without an answer count as not within
    log_once(batch, log_metric, "geo/within_25km", np.count_nonzero(scored <= NEAR_KM) / n)
    log_once(batch, log_metric, "geo/within_750km", np.count_nonzero(scored <= REGIONAL_KM) / n)


def _rewards(values: np.ndarray, labelled: np.ndarray) -> list[float | None]:
    """Per-row rewards for TRL: NaN (no answer) becomes 0, unlabelled rows None."""
    values = np.where(np.isnan(values), 0.0, values)
    return [v if ok else None for v, ok in zip(values.tolist(), labelled.tolist())]


# --- rewards ------------------------------------------------------------------------------------------------

@register("format")
def format_reward(prompts: Sequence[Any], completions: Sequence[Any], *, format_penalty: float = -0.1,
                  **kwargs: Any) -> list[float]:
    """Region-reasoning format, graded part by part (rewards.format.FormatParts): a <think> block, one <answer>
    block ending the completion, exactly one coordinate pair in it, and a country -> region -> city chain in
    the reasoning. Rows without coordinate labels (non-geo tasks in a mixed dataset) are graded on the
    <think>/<answer> structure alone, in [0, 1].

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's completions, as TRL hands them (chat messages or text).
        format_penalty: The reward of a completion on a geo row without a parseable answer.
        **kwargs: The dataset's columns, one value per completion (`lat`, `lon`, and `country`, `region`, `city`
            where the rows have them), and TRL's `trainer_state` and `log_metric`.

    Returns:
        One reward per completion.
    """
    batch = batch_of(completions)
    parts: list[FormatParts] = batch.cache.get("format_parts")
    if parts is None:
        answers = batch.answers
        parts = batch.cache["format_parts"] = [
            format_parts(text, answer) for text, answer in zip(batch.texts, answers)
        ]
    has_lat_column = kwargs.get("lat") is not None
    _, _, labelled = _truth(batch, kwargs)
    geo_rows = labelled if has_lat_column else np.ones(len(batch), dtype=bool)
    w_think, w_answer = FORMAT_WEIGHTS["think"], FORMAT_WEIGHTS["answer"]
    structure, penalty = w_think + w_answer, float(format_penalty)
    out = [
        p.score if geo and p.coordinates else penalty if geo else (w_think * p.think + w_answer * p.answer) / structure
        for p, geo in zip(parts, geo_rows.tolist())
    ]
    log_metric = kwargs.get("log_metric")
    _log_answer_metrics(batch, labelled, log_metric)
    if log_metric is not None and parts:
        log_once(batch, log_metric, "geo/format_think", sum(p.think for p in parts) / len(parts))
        log_once(batch, log_metric, "geo/format_answer", sum(p.answer for p in parts) / len(parts))
        log_once(batch, log_metric, "geo/format_chain", sum(p.chain for p in parts) / len(parts))
    return out


@register("haversine")
def haversine_reward(prompts: Sequence[Any], completions: Sequence[Any], *, tau_start: float = 2000.0,
                     tau_end: float = 25.0, tau_schedule: str = "exponential", **kwargs: Any) -> list[float | None]:
    """exp(-d_km / tau), with tau annealed over training: early on, any guess in the right part of the world is
    paid; late, only close ones are.

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's completions, as TRL hands them (chat messages or text).
        tau_start: tau (km) at the first step.
        tau_end: tau (km) at `max_steps`.
        tau_schedule: How tau moves in global_step / max_steps: constant, linear, exponential or cosine.
        **kwargs: The dataset's columns, one value per completion (`lat`, `lon`, and `country`, `region`, `city`
            where the rows have them), and TRL's `trainer_state` and `log_metric`.

    Returns:
        One reward per completion in [0, 1]: 0 without a valid answer, None for a row without coordinate labels.
    """
    batch = batch_of(completions)
    log_metric = kwargs.get("log_metric")
    km, labelled = _distances(batch, kwargs, log_metric)
    tau = anneal(tau_start, tau_end, training_progress(kwargs.get("trainer_state")), tau_schedule)
    log_once(batch, log_metric, "geo/tau", tau)
    return _rewards(np.exp(-km / tau), labelled)


@register("geoguessr")
def geoguessr_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """GeoGuessr score / 5000 = exp(-d_km / 1492.7): the benchmark's own curve, in [0, 1]."""
    batch = batch_of(completions)
    km, labelled = _distances(batch, kwargs, kwargs.get("log_metric"))
    return _rewards(geoguessr_score(km) / GEOGUESSR_MAX, labelled)


@register("georpiecewise")
def georpiecewise_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """Geo-R's piecewise-linear distance reward: 1 at 0 km, 0.5 at 750 km, 0.2 at 3000 km, 0 from 20000 km."""
    batch = batch_of(completions)
    km, labelled = _distances(batch, kwargs, kwargs.get("log_metric"))
    return _rewards(np.interp(km, PIECEWISE_KM, PIECEWISE_REWARD), labelled)


@register("within_km")
def within_km_reward(prompts: Sequence[Any], completions: Sequence[Any], *,
                     km_thresholds: Sequence[float] = (25.0, 200.0, 750.0, 2500.0), **kwargs: Any) -> list[float | None]:
    """Share of the distance thresholds the answer falls within (strictly, as OSV-5M counts them). Every answer
    within the smallest threshold scores the same, so a picture that tells the city but not the street pays nothing
    for the luck of the digits, while digits that drift out of the city lose a level.

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's completions, as TRL hands them (chat messages or text).
        km_thresholds: The distances, in km; by default the city, region, country and continent scales. Add 1 for
            street level when the pictures tell the street.
        **kwargs: The dataset's columns, one value per completion (`lat`, `lon`, and `country`, `region`, `city`
            where the rows have them), and TRL's `trainer_state` and `log_metric`.

    Returns:
        One reward per completion in [0, 1]: 0 without a valid answer, None for a row without coordinate labels.

    Raises:
        ValueError: A threshold that is not a positive distance.
    """
    batch = batch_of(completions)
    km, labelled = _distances(batch, kwargs, kwargs.get("log_metric"))
    thresholds = np.asarray(sorted(float(t) for t in km_thresholds), dtype=np.float64)
    if thresholds.size == 0 or not np.all(thresholds > 0):
        raise ValueError(f"within_km: km_thresholds must be positive distances, not {list(km_thresholds)}")
    with np.errstate(invalid="ignore"):
        share = (km[:, None] < thresholds[None, :]).mean(axis=1)
    return _rewards(np.where(np.isnan(km), np.nan, share), labelled)


@register("geohash")
def geohash_reward(prompts: Sequence[Any], completions: Sequence[Any], *, geohash_precision: int = 6,
                   **kwargs: Any) -> list[float | None]:
    """Length of the geohash prefix the answer shares with the truth / `geohash_precision`: one step per nested
    grid cell.

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's completions, as TRL hands them (chat messages or text).
        geohash_precision: Cells to compare (precision 1 is about 5000 km, 3 about 150 km, 6 about 1 km).
        **kwargs: The dataset's columns, one value per completion (`lat`, `lon`, and `country`, `region`, `city`
            where the rows have them), and TRL's `trainer_state` and `log_metric`.

    Returns:
        One reward per completion in [0, 1]: 0 without a valid answer, None for a row without coordinate labels.
    """
    batch = batch_of(completions)
    t_lat, t_lon, labelled = _truth(batch, kwargs)
    _distances(batch, kwargs, kwargs.get("log_metric"))  # the step's answer and distance figures
    p_lat, p_lon = batch.coordinates
    shared = geohash_prefix_lengths(p_lat, p_lon, t_lat, t_lon, geohash_precision).astype(np.float64)
    shared[shared < 0] = np.nan
    return _rewards(shared / geohash_precision, labelled)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    return list(values) if values is not None and len(values) == n else None


def hierarchy_truth(lat: np.ndarray, lon: np.ndarray, countries: Sequence[Any] | None,
                    regions: Sequence[Any] | None, cities: Sequence[Any] | None) -> PlaceLabels:
    """The country (`code`), region and city the hierarchy reward grades against: the one labelling rule of
    `open_r1.geo.labels`, the same truth the converters write, the SFT targets teach and the evaluation
    scores. `lat`/`lon` are NaN where a row has no valid coordinates (its labels are then taken as given)."""
    return resolve_places(lat, lon, countries, regions, cities)


@register("hierarchy")
def hierarchy_reward(prompts: Sequence[Any], completions: Sequence[Any], *, country_weight: float = 0.5,
                     region_weight: float = 0.3, city_weight: float = 0.2, **kwargs: Any) -> list[float | None]:
    """Credit for naming the right country, region (admin1) and city: the weighted share of levels matched.

    Truth per level: `hierarchy_truth`, the one labelling rule (`open_r1.geo.labels`). Prediction per level: the
    name the model wrote, else the nearest place to its coordinates. Names compare by normalised equality (case,
    accents, punctuation, country aliases and codes); GeoNames uses English/ASCII names, so "Lisboa" is a miss.
    The country counts only when the written country (if any) is the one its own coordinates fall in, so an answer
    cannot hedge; region and city count only when the country does (region names repeat across countries) and are
    not checked against the coordinates (the nearest populated place is too coarse to judge their boundaries).

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's completions, as TRL hands them (chat messages or text).
        country_weight: Weight of the country level.
        region_weight: Weight of the region level.
        city_weight: Weight of the city level. The three are normalised to sum to 1.
        **kwargs: The dataset's columns, one value per completion (`lat`, `lon`, and `country`, `region`, `city`
            where the rows have them), and TRL's `trainer_state` and `log_metric`.

    Returns:
        One reward per completion in [0, 1]: 0 without a valid answer, None for a row with neither coordinate
        labels nor a recognisable country label.
    """
    batch = batch_of(completions)
    n = len(batch)
    t_lat, t_lon, has_coords = _truth(batch, kwargs)
    log_metric = kwargs.get("log_metric")
    _log_answer_metrics(batch, has_coords, log_metric)
    _distances(batch, kwargs, log_metric)  # the step's distance figures, for a run that pays names alone
    truth = hierarchy_truth(t_lat, t_lon, *(_column(kwargs, name, n) for name in ("country", "region", "city")))

    # Prediction: where the model's coordinates fall (for unnamed levels and the country consistency check).
    answers = batch.answers
    p_lat, p_lon = batch.coordinates
    p_cc, p_region, p_city = reverse_geocode_arrays(p_lat, p_lon)

    p_cc, p_region, p_city = p_cc.tolist(), p_region.tolist(), p_city.tolist()
    total = country_weight + region_weight + city_weight
    weights = (country_weight / total, region_weight / total, city_weight / total) if total > 0 else (0.0,) * 3
    out: list[float | None] = []
    hits = [0, 0, 0]
    scored = 0
    rows = zip(answers, truth.code.tolist(), truth.region.tolist(), truth.city.tolist(), has_coords.tolist(), p_cc,
               p_region, p_city)
    for answer, true_cc, true_region, true_city, located, coords_cc, coords_region, coords_city in rows:
        if true_cc is None and not located:
            out.append(None)
            continue
        scored += 1
        if answer is None or true_cc is None:
            out.append(0.0)
            continue
        said_cc = country_code(answer.country) if answer.country else coords_cc
        if said_cc is None or said_cc != coords_cc or said_cc != true_cc:
            out.append(0.0)
            continue
        region_ok = same_place(answer.region or coords_region, true_region)
        city_ok = same_place(answer.city or coords_city, true_city)
        hits[0] += 1
        hits[1] += region_ok
        hits[2] += city_ok
        out.append(weights[0] + weights[1] * region_ok + weights[2] * city_ok)
    if log_metric is not None and scored:
        for level, name in enumerate(("country", "region", "city")):
            log_once(batch, log_metric, f"geo/{name}_accuracy", hits[level] / scored)
    return out

