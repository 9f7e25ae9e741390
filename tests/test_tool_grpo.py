"""GRPO with tools end to end: the real launcher, 2 processes under DeepSpeed ZeRO-3 on the CPU, the tiny model
trained 2 steps with `--tools zoom lookup` through TRL's own tool loop (the photo tools bound per rollout by
`environment_factory`), the tool metrics logged and a whole model saved."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from test_launcher import launch

pytestmark = pytest.mark.slow


def test_two_process_zero3_grpo_with_zoom_and_lookup(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    log = launch(
        out, "--tools", "zoom", "lookup", "--max_tool_calling_iterations", "2",
        # the base tiny model writes no answer, so format/haversine pay every completion alike (no gradient);
        # the launcher test's dense reward makes the 2 steps update the weights
        "--reward_funcs", "distinct_chars", "tool_use", "--reward_weights", "1.0", "0.5",
        "--reward_module", "tests/fixtures/dense_reward.py",
        "--max_completion_length", "16", "--per_device_train_batch_size", "4", "--num_generations", "4",
        "--max_steps", "2", "--save_steps", "2",
        WARM_START="none", EVAL="0", DS_CONFIG="local_scripts/zero3_cpu.json",
    )
    assert "tools ['zoom', 'lookup']" in log
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    steps = [h for h in state["log_history"] if "rewards/tool_use/mean" in h]
    assert len(steps) == 2, state["log_history"]
    for entry in steps:  # TRL's tool loop ran (its counters) and geo-r's episode reader logged alongside
        assert "tools/call_frequency" in entry and "tools/failure_frequency" in entry
        assert entry["tools/calls_per_episode"] >= 0 and 0 <= entry["tools/error_rate"] <= 1
    base = load_file(tiny_model_dir / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert set(base) == set(trained) and any(not torch.equal(base[k], trained[k]) for k in base)
