"""Each GRPO variant recipe of data_config/grpo_variants/ (Dr. GRPO, DAPO, GSPO, normalize-then-sum) trains two
steps through grpo_jsonl.py on the tiny model, with its settings in the run's saved arguments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO

VARIANTS = sorted((REPO / "data_config" / "grpo_variants").glob("*.yaml"))


def overlay(path: Path) -> dict:
    """The recipe's training keys (the model line only makes it a complete recipe)."""
    settings = yaml.safe_load(path.read_text())
    settings.pop("model_name_or_path")
    return settings


def test_there_are_the_four_variants():
    assert [p.stem for p in VARIANTS] == ["dapo", "dr_grpo", "gspo", "normalize_then_sum"]


@pytest.mark.slow
@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
def test_each_variant_trains_two_steps(tmp_path, tiny_model_dir, path):
    from test_grpo_train import run_main

    settings = overlay(path)
    out = run_main(tmp_path, tiny_model_dir, script=dict(reward_funcs=["distinct_chars", "format"]),
                   save_strategy="steps", save_steps=2, **settings)
    checkpoint = out / "checkpoint-2"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    used = torch.load(checkpoint / "training_args.bin", weights_only=False)
    assert {key: getattr(used, key) for key in settings} == settings
