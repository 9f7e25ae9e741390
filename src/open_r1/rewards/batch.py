"""What the rewards of one GRPO step share: the completions' texts, their parsed answers and the labels.

TRL calls every reward function with the same `completions` list object in a step, so the first reward to
see that list computes these once and the others reuse them (one parse per completion per step, however
large the batch; the parse cache alone would thrash on batches bigger than it). Identity, not equality, is
the key: a new step brings a new list.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from open_r1.answer import GeoAnswer, parse_answer
from open_r1.answer.episode import read_episode

__all__ = ["Batch", "as_float", "batch_of", "completion_text", "log_once", "truth_coordinates"]


def completion_text(completion: Any) -> str:
    """The text of a completion, plain (`"..."`) or conversational (`[{"role": "assistant", "content": ...}]`,
    content a string or a list of `{"type": "text", "text": ...}` parts), with tool turns
    (`open_r1.answer.episode`): every assistant turn's text, the answer only from after the last tool turn.
    Anything else reads as ""."""
    return read_episode(completion).text


def as_float(value: Any) -> float:
    """A label value as float; NaN for None, text that is no number, and non-finite values."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


class Batch:
    """Texts, answers and predicted coordinates of one step's completions, computed once on first use."""

    def __init__(self, completions: Sequence[Any]):
        self.source = completions
        self.items = list(completions)
        self.texts = [completion_text(c) for c in self.items]
        self.logged: set[str] = set()
        self._answers: list[GeoAnswer | None] | None = None
        self._coordinates: tuple[np.ndarray, np.ndarray] | None = None
        self._truth_source: tuple[Any, Any] | None = None  # the label lists the cached truth came from
        self._truth: tuple[np.ndarray, np.ndarray] | None = None
        self.cache: dict[str, Any] = {}  # per-step results rewards choose to share (e.g. format parts)

    def __len__(self) -> int:
        return len(self.items)

    def matches(self, completions: Sequence[Any]) -> bool:
        return (
            completions is self.source and len(completions) == len(self.items)
            and all(map(operator.is_, completions, self.items))
        )

    @property
    def answers(self) -> list[GeoAnswer | None]:
        if self._answers is None:
            self._answers = [parse_answer(text) for text in self.texts]
        return self._answers

    @property
    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Predicted latitudes and longitudes; NaN where a completion has no valid answer."""
        if self._coordinates is None:
            lat = np.array([a.lat if a is not None else math.nan for a in self.answers], dtype=np.float64)
            lon = np.array([a.lon if a is not None else math.nan for a in self.answers], dtype=np.float64)
            self._coordinates = (lat, lon)
        return self._coordinates

    def truth(self, lats: Sequence[Any] | None, lons: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
        """True coordinates from the rows' `lat`/`lon` columns; NaN for rows without valid labels."""
        source = self._truth_source
        if self._truth is None or source is None or source[0] is not lats or source[1] is not lons:
            self._truth = truth_coordinates(lats, lons, len(self))
            self._truth_source = (lats, lons)
        return self._truth


def truth_coordinates(lats: Sequence[Any] | None, lons: Sequence[Any] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Label arrays of length n; NaN where a row has no label or an invalid one (|lat| > 90, |lon| > 180)."""
    if lats is None or lons is None:
        return np.full(n, math.nan), np.full(n, math.nan)
    if len(lats) != n or len(lons) != n:
        raise ValueError(f"{len(lats)} lat and {len(lons)} lon labels for {n} completions")
    lat, lon = _floats(lats), _floats(lons)
    bad = ~((np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    lat[bad] = lon[bad] = math.nan
    return lat, lon


def _floats(values: Sequence[Any]) -> np.ndarray:
    """`as_float` of each value; plain floats (what a dataset column holds) convert in one numpy call."""
    if all(type(v) is float for v in values):
        return np.array(values, dtype=np.float64)  # inf stays inf here; the range check turns it into NaN
    return np.array([as_float(v) for v in values], dtype=np.float64)


_last: Batch | None = None


def batch_of(completions: Sequence[Any]) -> Batch:
    """The shared view of this step's completions (built by the first reward that asks)."""
    global _last
    batch = _last
    if batch is None or not batch.matches(completions):
        batch = _last = Batch(completions)
    return batch


def log_once(batch: Batch, log_metric: Callable[[str, float], None] | None, name: str, value: float) -> None:
    """Report a step metric through TRL's `log_metric` hook, once per step whichever rewards ask."""
    if log_metric is None or name in batch.logged:
        return
    batch.logged.add(name)
    log_metric(name, float(value))
