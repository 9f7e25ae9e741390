"""Converted data trains as it is: a table -> jsonl -> one GRPO step of the entry script on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, make_images
from open_r1.data.convert.__main__ import main as convert_main


@pytest.mark.slow
def test_one_grpo_step_on_converted_rows(tmp_path, tiny_model_dir):
    images = tmp_path / "images"
    make_images(images, [f"{k:02d}/{1000 + i}.jpg" for k in range(2) for i in range(4 * k, 4 * k + 4)])
    cities = [(38.72, -9.14), (48.86, 2.35), (52.52, 13.40), (35.69, 139.69),
              (-33.87, 151.21), (40.71, -74.01), (-23.55, -46.64), (30.06, 31.25)]
    table = tmp_path / "train.csv"
    table.write_text("id,latitude,longitude,country,region,city\n" + "".join(
        f"{1000 + i},{lat},{lon},,,\n" for i, (lat, lon) in enumerate(cities)))
    data = tmp_path / "train.jsonl"
    assert convert_main(["osv5m", "--csv", str(table), "--images", str(images), "--out", str(data), "--quiet"]) == 0

    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "open_r1.grpo_jsonl",
        "--model_name_or_path", str(tiny_model_dir),
        "--data_file_paths", str(data), "--image_folders", str(images),
        "--reward_funcs", "format", "haversine",
        "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "4",
        "--num_generations", "2", "--max_completion_length", "8", "--max_pixels", "12544", "--min_pixels", "3136",
        "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
        "--use_cpu", "true", "--bf16", "false", "--gradient_checkpointing", "false", "--seed", "0",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "model.safetensors").is_file()
    assert "8 training rows" in result.stderr  # every converted row loaded
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [log for log in logs if "loss" in log]
    assert len(logs) == 1 and "rewards/haversine/mean" in logs[0]  # one step, rewarded against the labels
    assert [line.split()[2] for line in result.stdout.splitlines() if line.startswith("[geo-r] step ")] == ["1/1"]
