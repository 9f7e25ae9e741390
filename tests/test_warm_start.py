"""When a GRPO launch may reuse an SFT warm start: the fingerprint moves with the model, data, recipe and flags."""

from __future__ import annotations

import subprocess
import sys

from open_r1.training.warm_start import fingerprint


def test_the_fingerprint_moves_with_each_input_and_only_then(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 64}')
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": 1}\n')
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("learning_rate: 1e-3\n")
    inputs = [str(model), str(data), str(recipe)]
    first = fingerprint(inputs, ["--seed", "42"])
    assert fingerprint(inputs, ["--seed", "42"]) == first and len(first) == 16
    assert fingerprint(inputs, ["--seed", "7"]) != first
    recipe.write_text("learning_rate: 2e-3\n")
    assert fingerprint(inputs, ["--seed", "42"]) != first
    recipe.write_text("learning_rate: 1e-3\n")
    data.write_text('{"id": 1}\n{"id": 2}\n')
    assert fingerprint(inputs, ["--seed", "42"]) != first
    data.write_text('{"id": 1}\n')
    (model / "config.json").write_text('{"hidden_size": 128}')
    assert fingerprint(inputs, ["--seed", "42"]) != first
    (model / "config.json").write_text('{"hidden_size": 64}')
    assert fingerprint(inputs, ["--seed", "42"]) == first


def test_a_hub_model_id_counts_by_its_name_and_the_cli_prints_the_same_digits(tmp_path):
    assert fingerprint(["Qwen/Qwen2.5-VL-3B-Instruct"]) != fingerprint(["Qwen/Qwen2.5-VL-7B-Instruct"])
    out = subprocess.run([sys.executable, "-m", "open_r1.training.warm_start", "Qwen/Qwen2.5-VL-3B-Instruct", "--",
                          "--seed", "1"], capture_output=True, text=True, check=True).stdout.strip()
    assert out == fingerprint(["Qwen/Qwen2.5-VL-3B-Instruct"], ["--seed", "1"])
