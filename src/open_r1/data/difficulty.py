"""How hard a training row is for a model, from k answers it sampled for the row, and the filters a hard-sample
curriculum trains on (Geo-R's result: RL on rows a smaller model does not already solve beats RL on random rows).

Per row: `pass_rate` (share of the k answers within `threshold_km` of the truth), `mean_geoguessr` (their mean
GeoGuessr points, 0 for an unparsed answer), `agreement` (share of pairs of answers, both parsed, within
`threshold_km` of each other: how sure the model is, right or wrong) and `difficulty` = 1 - pass_rate, which
`--sample_by difficulty` draws rows in proportion to. Scored rows keep every field of their input line.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from open_r1.data.rows import DataError
from open_r1.geo.distance import geoguessr_score, haversine_km

Guess = tuple[float | None, float | None]  # an answer's (lat, lon); None when it did not parse


@dataclass(frozen=True)
class Difficulty:
    """A row's scores from k answers (the fields written into the row)."""

    difficulty: float
    pass_rate: float
    mean_geoguessr: float
    agreement: float
    difficulty_k: int
    difficulty_threshold_km: float


def score_guesses(guesses: Sequence[Guess], true_lat: float, true_lon: float, threshold_km: float = 25.0) -> Difficulty:
    """Score one row's k answers against its true location."""
    if not guesses:
        raise ValueError("no answers to score")
    parsed = [(lat, lon) for lat, lon in guesses if lat is not None and lon is not None]
    km = [haversine_km(lat, lon, true_lat, true_lon) for lat, lon in parsed]
    passed = sum(d <= threshold_km for d in km)
    points = sum(geoguessr_score(d) for d in km)
    pairs = list(itertools.combinations(range(len(guesses)), 2))
    if pairs:
        ok = {i for i, (lat, lon) in enumerate(guesses) if lat is not None and lon is not None}
        agree = sum(i in ok and j in ok and haversine_km(*guesses[i], *guesses[j]) <= threshold_km for i, j in pairs)
        agreement = agree / len(pairs)
    else:
        agreement = float(len(parsed))  # one answer agrees with itself when it parsed
    pass_rate = passed / len(guesses)
    return Difficulty(1.0 - pass_rate, pass_rate, float(points) / len(guesses), agreement, len(guesses),
                      float(threshold_km))


def solved(score: Difficulty) -> bool:
    """Whether every one of the row's k answers passed."""
    return score.pass_rate >= 1.0


def hotspot_mask(lats: Sequence[float], lons: Sequence[float], is_solved: Sequence[bool], radius_km: float,
                 chunk: int = 4096) -> np.ndarray:
    """True for rows within `radius_km` of a row the model solves k/k (the solved rows included): the "hotspots"
    a model already places, which hold little for RL to learn."""
    lats, lons = np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)
    solved_at = np.flatnonzero(np.asarray(is_solved, dtype=bool))
    near = np.zeros(lats.shape, dtype=bool)
    if not solved_at.size:
        return near
    for start in range(0, lats.size, chunk):
        part = slice(start, start + chunk)
        km = haversine_km(lats[part, None], lons[part, None], lats[None, solved_at], lons[None, solved_at])
        near[part] = (np.atleast_2d(km) <= radius_km).any(axis=1)
    return near


def keep_mask(scores: Sequence[Difficulty], lats: Sequence[float], lons: Sequence[float], *,
              drop_solved: bool = False, min_difficulty: float = 0.0, hotspot_km: float | None = None) -> list[bool]:
    """Which scored rows (true coordinates `lats`, `lons`) go into the training file: not solved k/k
    (`drop_solved`), at least `min_difficulty` hard, and farther than `hotspot_km` from every solved row."""
    keep = [s.difficulty >= min_difficulty and not (drop_solved and solved(s)) for s in scores]
    if hotspot_km is not None:
        near = hotspot_mask(lats, lons, [solved(s) for s in scores], hotspot_km)
        keep = [k and not n for k, n in zip(keep, near.tolist())]
    return keep


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as jsonl (via a temporary file, so a half-written file never looks finished); returns count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with open(partial, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    partial.replace(path)
    return count


def with_scores(raw: dict[str, Any], score: Difficulty, where: str) -> dict[str, Any]:
    """The input line's object with the scores added (refusing a line that is not an object)."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    return {**raw, **asdict(score)}
