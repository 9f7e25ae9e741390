"""Annealing schedules of reward parameters."""

import math
from types import SimpleNamespace

import pytest

from open_r1.schedules import SCHEDULES, anneal, training_progress


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_endpoints_and_monotone(schedule):
    values = [anneal(2000.0, 25.0, p / 20, schedule) for p in range(21)]
    assert values[0] == pytest.approx(2000.0)
    assert values[-1] == pytest.approx(2000.0 if schedule == "constant" else 25.0)
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:]))


def test_midpoints():
    assert anneal(2000.0, 25.0, 0.5, "linear") == pytest.approx(1012.5)
    assert anneal(2000.0, 25.0, 0.5, "exponential") == pytest.approx(math.sqrt(2000.0 * 25.0))
    assert anneal(2000.0, 25.0, 0.5, "cosine") == pytest.approx(1012.5)
    assert anneal(2000.0, 25.0, 0.25, "cosine") > anneal(2000.0, 25.0, 0.25, "linear")  # flat start


def test_progress_is_clamped_and_guarded():
    assert anneal(2000.0, 25.0, 3.0, "linear") == pytest.approx(25.0)
    assert anneal(2000.0, 25.0, -1.0, "linear") == pytest.approx(2000.0)
    assert training_progress(SimpleNamespace(global_step=30, max_steps=120)) == 0.25
    assert training_progress(SimpleNamespace(global_step=500, max_steps=120)) == 1.0
    for state in (None, SimpleNamespace(global_step=5, max_steps=0), SimpleNamespace(global_step=5, max_steps=None),
                  SimpleNamespace()):
        assert training_progress(state) == 0.0


def test_bad_schedules():
    with pytest.raises(ValueError):
        anneal(1.0, 2.0, 0.5, "sawtooth")
    with pytest.raises(ValueError):
        anneal(0.0, 2.0, 0.5, "exponential")
