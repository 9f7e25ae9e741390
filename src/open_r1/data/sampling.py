"""How often each training row is drawn: geo-balanced (a group's share proportional to n_group ** alpha, so alpha 1
keeps the data's own mix and alpha 0 draws every country, region or geocell equally) and, for a hard-sample
curriculum, in proportion to a row's `difficulty`. In memory this is a seeded draw with replacement
(`weighted_draw`); a stream repeats each row a seeded number of times (`StreamWeights`); both are deterministic
per seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from open_r1.configs import BALANCE_BY, SAMPLE_BY
from open_r1.data.rows import DataError, Row
from open_r1.errors import ArgumentError
from open_r1.geo.geohash import geohash_encode

UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class RowSampling:
    """What a row's weight depends on: `balance_by` (None: no balancing) with `alpha`, and `sample_by`."""

    balance_by: str | None = None
    alpha: float = 1.0
    geocell_precision: int = 3
    sample_by: str | None = None

    def __post_init__(self) -> None:
        if self.balance_by is not None and self.balance_by not in BALANCE_BY:
            raise ArgumentError(f"--balance_by must be one of {BALANCE_BY}, got {self.balance_by!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ArgumentError(f"--balance_alpha must be in [0, 1], got {self.alpha}")
        if self.sample_by is not None and self.sample_by not in SAMPLE_BY:
            raise ArgumentError(f"--sample_by must be one of {SAMPLE_BY}, got {self.sample_by!r}")
        if not 1 <= self.geocell_precision <= 12:
            raise ArgumentError(f"--balance_geocell_precision must be in 1..12, got {self.geocell_precision}")

    @classmethod
    def from_args(cls, args) -> RowSampling:
        """The sampling `GRPOScriptArguments` (its `RowSamplingArguments` fields) asks for."""
        return cls(args.balance_by, args.balance_alpha, args.balance_geocell_precision, args.sample_by)

    @property
    def active(self) -> bool:
        return self.balance_by is not None or self.sample_by is not None


def group_key(row: Row, by: str, geocell_precision: int = 3) -> str:
    """The group a row is balanced in: its country, its country/region, or its geohash cell."""
    if by == "country":
        return row.country or UNKNOWN
    if by == "region":
        return f"{row.country or UNKNOWN}/{row.region or UNKNOWN}"
    if by == "geocell":
        return UNKNOWN if row.lat is None or row.lon is None else geohash_encode(row.lat, row.lon, geocell_precision)
    raise ValueError(f"unknown grouping {by!r}; choose one of {BALANCE_BY}")


def row_difficulty(row: Row) -> float:
    """A row's `difficulty` field (written by `python -m open_r1.difficulty`), checked to be a number in [0, 1]."""
    value = row.extra.get("difficulty")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DataError(f"{row.source}: field 'difficulty': expected a number in [0, 1] (score the rows with "
                        f"python -m open_r1.difficulty), got {value!r}")
    return float(value)


@dataclass
class RowWeights:
    """Per-row weights under `sampling`, given the group sizes of the whole training set."""

    sampling: RowSampling
    counts: Counter = field(default_factory=Counter)

    @classmethod
    def fit(cls, sampling: RowSampling, rows: Iterable[Row]) -> RowWeights:
        counts: Counter = Counter()
        if sampling.balance_by is not None:
            counts.update(group_key(r, sampling.balance_by, sampling.geocell_precision) for r in rows)
        return cls(sampling, counts)

    def __call__(self, row: Row) -> float:
        weight = 1.0
        if self.sampling.balance_by is not None:
            n = self.counts[group_key(row, self.sampling.balance_by, self.sampling.geocell_precision)]
            weight *= n ** (self.sampling.alpha - 1.0)
        if self.sampling.sample_by == "difficulty":
            weight *= row_difficulty(row)
        return weight


def weighted_draw(weights: Sequence[float], size: int, seed: int) -> list[int]:
    """`size` row indices drawn with replacement in proportion to `weights`, the same for the same seed."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DataError("no row has a positive sampling weight (every row's difficulty is 0?): nothing to train on")
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.choice(w.size, size=size, replace=True, p=w / w.sum()).tolist()


def top_shares(keys: Sequence[str], weights: Sequence[float] | None = None, top: int = 5) -> list[tuple[str, float]]:
    """The `top` groups by share of the (weighted) draws: [(group, share)], largest first."""
    totals: Counter = Counter()
    for i, key in enumerate(keys):
        totals[key] += 1.0 if weights is None else weights[i]
    whole = sum(totals.values()) or 1.0
    return [(key, value / whole) for key, value in totals.most_common(top)]


def describe_shares(keys: Sequence[str], weights: Sequence[float], top: int = 5) -> str:
    """Start-up log line: the top groups' shares in the data and as drawn."""
    before = ", ".join(f"{k} {s:.1%}" for k, s in top_shares(keys, None, top))
    after = ", ".join(f"{k} {s:.1%}" for k, s in top_shares(keys, weights, top))
    return f"{len(set(keys))} groups; top shares in the data: {before}; as drawn: {after}"


def describe_counts(counts: Counter, alpha: float, top: int = 5) -> str:
    """`describe_shares` from group sizes alone (a stream holds no per-row list): share n_g / N in the data,
    n_g ** alpha / sum over groups as drawn."""
    whole = sum(counts.values()) or 1
    drawn_whole = sum(n ** alpha for n in counts.values()) or 1.0
    before = ", ".join(f"{k} {n / whole:.1%}" for k, n in counts.most_common(top))
    drawn = sorted(counts.items(), key=lambda kv: -(kv[1] ** alpha))[:top]
    after = ", ".join(f"{k} {n ** alpha / drawn_whole:.1%}" for k, n in drawn)
    return f"{len(counts)} groups; top shares in the data: {before}; as drawn: {after}"


class StreamWeights:
    """For a stream: how many copies of a row to emit, on average N * w / W (N rows, W their total weight), as
    floor or ceil of it by a seeded coin, so an epoch keeps about N rows. Picklable."""

    def __init__(self, weights: RowWeights, rows: int, total_weight: float):
        if total_weight <= 0:
            raise DataError("no row has a positive sampling weight (every row's difficulty is 0?): nothing to train on")
        self.weights = weights
        self.scale = rows / total_weight

    def copies(self, row: Row, rng: random.Random) -> int:
        expected = self.weights(row) * self.scale
        whole = math.floor(expected)
        return whole + (rng.random() < expected - whole)
