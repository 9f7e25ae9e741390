"""Reward weights on a schedule: the syntax, the values at each step, and (slow) the weights GRPOTrainer applies."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from open_r1.configs import GRPOScriptArguments
from open_r1.schedules import WeightSchedule, anneal, parse_weight_schedules
from open_r1.training.reward_weights import RewardWeightScheduleCallback


def test_the_syntax_reads_name_start_end_and_schedule():
    parsed = parse_weight_schedules(["hierarchy=1.0:0.2:linear", "haversine=0.2:1", "format=0.5:0:step@0.3"])
    assert parsed == [
        WeightSchedule("hierarchy", 1.0, 0.2, "linear"),
        WeightSchedule("haversine", 0.2, 1.0, "linear"),
        WeightSchedule("format", 0.5, 0.0, "step", 0.3),
    ]
    assert parsed[2].at(0.29) == 0.5 and parsed[2].at(0.3) == 0.0


@pytest.mark.parametrize("spec", ["hierarchy", "hierarchy=1.0", "hierarchy=a:b", "hierarchy=1:0:sawtooth",
                                  "hierarchy=1:0:linear@0.5", "hierarchy=1:0:step@2", "hierarchy=0:1:exponential"])
def test_bad_specs_are_refused_with_the_spec_named(spec):
    with pytest.raises(ValueError, match="reward weight schedule"):
        parse_weight_schedules([spec])


def test_a_schedule_for_a_reward_not_trained_with_is_refused():
    with pytest.raises(ValueError, match="not in --reward_funcs"):
        GRPOScriptArguments(reward_funcs=["format", "haversine"], reward_weight_schedules=["hierarchy=1:0"])


def test_the_step_schedule_switches_once():
    assert [anneal(1.0, 0.0, p / 10, "step") for p in range(11)] == [1.0] * 5 + [0.0] * 6


def test_the_callback_writes_the_scheduled_weights_into_the_trainers_tensor_each_step():
    logged = []
    trainer = SimpleNamespace(reward_func_names=["format", "hierarchy", "haversine"],
                              reward_weights=torch.tensor([0.5, 1.0, 1.0]),
                              _log_metric=lambda name, value: logged.append((name, value)))
    callback = RewardWeightScheduleCallback(trainer, parse_weight_schedules(
        ["hierarchy=1.0:0.2:linear", "haversine=0.2:1.0:cosine"]))
    seen = []
    for step in range(5):
        callback.on_step_begin(None, SimpleNamespace(global_step=step, max_steps=4), None)
        seen.append(trainer.reward_weights.tolist())
    assert [w[0] for w in seen] == [0.5] * 5  # unscheduled: unchanged
    assert [w[1] for w in seen] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    cosine = [1.0 + (0.2 - 1.0) * 0.5 * (1 + math.cos(math.pi * p / 4)) for p in range(5)]  # 0.2 -> 1.0
    assert [w[2] for w in seen] == pytest.approx(cosine) and cosine[2] == pytest.approx(0.6)
    assert ("reward_weights/hierarchy", pytest.approx(0.6)) in logged


@pytest.mark.slow
def test_grpo_applies_the_scheduled_weights_step_by_step(tmp_path, tiny_model_dir):
    """Two constant rewards (1 and 2): TRL's logged reward is 1 * w_one + 2 * w_two, the weights it applied."""
    from conftest import REPO
    from open_r1.rewards import REWARDS
    from test_grpo_train import run_main

    try:
        out = run_main(tmp_path, tiny_model_dir, script=dict(
            reward_funcs=["always_one", "always_two"], reward_module=str(REPO / "tests/fixtures/constant_rewards.py"),
            reward_weight_schedules=["always_one=1.0:0.0:linear", "always_two=0.0:1.0:step@0.5"]),
            max_steps=4, save_strategy="steps", save_steps=4)
    finally:  # the module's rewards were registered in this process: leave the registry as other tests expect it
        REWARDS.pop("always_one", None)
        REWARDS.pop("always_two", None)
    history = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    logs = [h for h in history if "reward" in h]
    assert [h["reward_weights/always_one"] for h in logs] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert [h["reward_weights/always_two"] for h in logs] == pytest.approx([0.0, 0.0, 1.0, 1.0])
    assert [h["reward"] for h in logs] == pytest.approx([1.0, 0.75, 2.5, 2.25])
