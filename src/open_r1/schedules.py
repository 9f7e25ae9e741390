"""Annealing of reward parameters over training: the haversine reward's distance scale tau starts wide (every
guess on the right continent is paid) and narrows (only street-level guesses are), and a reward's weight can move
(hierarchy first, coordinates later), driven by the trainer's progress so a resumed run continues where it
stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["SCHEDULES", "WeightSchedule", "anneal", "parse_weight_schedules", "training_progress"]

SCHEDULES = ("constant", "linear", "exponential", "cosine", "step")
STEP_AT = 0.5  # where the step schedule switches from start to end, as a share of training


def training_progress(trainer_state: Any) -> float:
    """global_step / max_steps in [0, 1]; 0 when there is no state or no known length (max_steps 0 or None)."""
    step = getattr(trainer_state, "global_step", None)
    total = getattr(trainer_state, "max_steps", None)
    if not step or not total or total <= 0:
        return 0.0
    return min(max(step / total, 0.0), 1.0)


def anneal(start: float, end: float, progress: float, schedule: str, step_at: float = STEP_AT) -> float:
    """Value at `progress` in [0, 1] going from `start` to `end`.

    constant: start throughout. linear: straight line. exponential: straight line in log space (the same
    factor per step, suited to a scale spanning orders of magnitude; start and end must be positive).
    cosine: half a cosine, flat at both ends. step: start until `step_at` of training, end from there on.
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start + (end - start) * p
    if schedule == "exponential":
        if start <= 0 or end <= 0:
            raise ValueError(f"the exponential schedule needs positive start and end, got {start} and {end}")
        return start * (end / start) ** p
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "step":
        return start if p < step_at else end
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class WeightSchedule:
    """One reward's weight over training: from `start` to `end` along `schedule` (switching at `step_at` for
    the step schedule)."""

    name: str
    start: float
    end: float
    schedule: str = "linear"
    step_at: float = STEP_AT

    def at(self, progress: float) -> float:
        return anneal(self.start, self.end, progress, self.schedule, self.step_at)


def parse_weight_schedules(specs: list[str]) -> list[WeightSchedule]:
    """Read `NAME=START:END[:SCHEDULE]` entries (SCHEDULE defaults to linear; `step@F` switches at share F of
    training), e.g. `hierarchy=1.0:0.2:linear haversine=0.2:1.0:cosine format=0.5:0:step@0.3`."""
    schedules: list[WeightSchedule] = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        parts = values.split(":")
        if not sep or not name or len(parts) not in (2, 3):
            raise ValueError(f"reward weight schedule {spec!r}: expected NAME=START:END[:SCHEDULE], e.g. "
                             f"hierarchy=1.0:0.2:linear")
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"reward weight schedule {spec!r}: START and END must be numbers") from None
        kind, _, at = (parts[2] if len(parts) == 3 else "linear").partition("@")
        if kind not in SCHEDULES:
            raise ValueError(f"reward weight schedule {spec!r}: unknown schedule {kind!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        if at and kind != "step":
            raise ValueError(f"reward weight schedule {spec!r}: only the step schedule takes @F")
        try:
            step_at = float(at) if at else STEP_AT
        except ValueError:
            raise ValueError(f"reward weight schedule {spec!r}: step@F needs a number F in [0, 1]") from None
        if not 0.0 <= step_at <= 1.0:
            raise ValueError(f"reward weight schedule {spec!r}: step@F needs F in [0, 1], got {step_at}")
        if any(s.name == name for s in schedules):
            raise ValueError(f"reward weight schedule {spec!r}: {name} is scheduled twice")
        if kind == "exponential" and min(start, end) <= 0:
            raise ValueError(f"reward weight schedule {spec!r}: the exponential schedule needs positive weights")
        schedules.append(WeightSchedule(name, start, end, kind, step_at))
    return schedules
