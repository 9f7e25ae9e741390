"""Annealing of reward parameters over training: the haversine reward's distance scale tau starts wide (every
guess on the right continent is paid) and narrows (only street-level guesses are), driven by the trainer's
progress so a resumed run continues where it stopped.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SCHEDULES", "anneal", "training_progress"]

SCHEDULES = ("constant", "linear", "exponential", "cosine")


def training_progress(trainer_state: Any) -> float:
    """global_step / max_steps in [0, 1]; 0 when there is no state or no known length (max_steps 0 or None)."""
    step = getattr(trainer_state, "global_step", None)
    total = getattr(trainer_state, "max_steps", None)
    if not step or not total or total <= 0:
        return 0.0
    return min(max(step / total, 0.0), 1.0)


def anneal(start: float, end: float, progress: float, schedule: str) -> float:
    """Value at `progress` in [0, 1] going from `start` to `end`.

    constant: start throughout. linear: straight line. exponential: straight line in log space (the same
    factor per step, suited to a scale spanning orders of magnitude; start and end must be positive).
    cosine: half a cosine, flat at both ends.
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
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
