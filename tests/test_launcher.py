"""The real launcher end to end on CPU: 2 processes under DeepSpeed ZeRO-3, a checkpoint, then resume."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from conftest import REPO
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def launch(output_dir, *flags, timeout=900) -> str:
    env = dict(os.environ, OUTPUT_DIR=str(output_dir), REPORT_TO="none", CUDA_VISIBLE_DEVICES="")
    env.pop("MODEL", None)
    result = subprocess.run(
        ["bash", "run_scripts/run_grpo_rec.sh", *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


def final_step(folder) -> int:
    return json.loads((folder / "trainer_state.json").read_text())["global_step"]


def test_two_process_zero3_run_checkpoints_learns_and_resumes(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    dense = ["--reward_funcs", "distinct_chars", "--reward_weights", "1.0", "--reward_module", "tests/fixtures/dense_reward.py",
             "--max_completion_length", "16", "--per_device_train_batch_size", "4", "--num_generations", "4"]
    log = launch(out, "--max_steps", "2", "--save_steps", "2", *dense)
    assert "embedded default" in log
    assert "'reward':" in log or '"reward":' in log, "no reward was logged"
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert any(p.name.startswith("global_step") for p in (out / "checkpoint-2").iterdir()), "no ZeRO-3 state"
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [h for h in state["log_history"] if "reward" in h], "rewards missing from the trainer state"

    base = load_file(tiny_model_dir / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert set(base) == set(trained), "ZeRO-3 saved a partial (partitioned) model"
    assert any(not torch.equal(base[k], trained[k]) for k in base), "the weights did not change"

    log = launch(out, "--max_steps", "3", "--save_steps", "3", *dense)
    assert "resuming from" in log and "checkpoint-2" in log
    assert final_step(out / "checkpoint-3") == 3
