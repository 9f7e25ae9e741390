"""bench/learning.py's two protocols: the reported seeds on the test split, and `--dev` (tuning seeds on the dev
split) for choosing a recipe. The launcher is replaced by a fake that records what it was given, so this checks the
wiring; the full-length runs are the bench itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import learning
import recorded


@pytest.fixture
def launcher(monkeypatch):
    """A stand-in for run_grpo_rec.sh: writes the files a finished run leaves and records its call."""
    calls: list[dict] = []

    def fake_run(args, cwd=None, env=None, **kwargs):
        calls.append({"args": list(args), "env": dict(env)})
        grpo, sft = Path(env["OUTPUT_DIR"]), Path(env["WARM_START_DIR"])
        for stage, acc in ((sft, 90.0), (grpo, 92.5)):
            (stage / "eval").mkdir(parents=True, exist_ok=True)
            (stage / "eval" / "metrics.json").write_text(json.dumps(
                {"acc@25km": acc, "acc@750km": 99.0, "geoguessr": 4800 + acc, "median_km": 3.0,
                 "parse_failure_rate": 0.0, "country_acc": 99.0, "city_acc": acc}))
        (grpo / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward": 2.0 + i / 100}) + "\n"
                                                    for i in range(1, 9)))
        return subprocess.CompletedProcess(args, 0, "[geo-r] step 8/8\n", "")

    monkeypatch.setattr(learning.subprocess, "run", fake_run)
    return calls


def test_a_dev_run_scores_the_dev_split_keeps_the_warm_start_and_passes_launcher_arguments(tmp_path, launcher):
    out = tmp_path / "seed11"
    (out / "sft").mkdir(parents=True)
    (out / "sft" / "model.safetensors").write_text("kept")
    (out / "grpo").mkdir()
    (out / "grpo" / "stale").write_text("from the last run")

    run = learning.run_seed(11, out, dev=True, reuse_warm_start=True, launcher_args=["--scale_rewards", "group"])

    call = launcher[0]
    assert call["args"] == ["bash", "run_scripts/run_grpo_rec.sh", "--scale_rewards", "group"]
    assert call["env"]["EVAL_DATA"] == str(learning.DEV_SPLIT / "dev.jsonl")
    assert call["env"]["EVAL_IMAGES"] == str(learning.DEV_SPLIT / "images")
    assert call["env"]["SEED"] == "11" and "MODEL" not in call["env"]
    assert (out / "sft" / "model.safetensors").read_text() == "kept"
    assert not (out / "grpo" / "stale").exists()
    assert run["reward_first"] < run["reward_last"]
    assert all(learning.targets(run)[name] for name in learning.LEARNING_TARGETS)


def test_a_reported_run_starts_from_scratch_on_the_test_split(tmp_path, launcher, monkeypatch):
    monkeypatch.delenv("EVAL_DATA", raising=False)
    out = tmp_path / "seed42"
    (out / "sft").mkdir(parents=True)
    (out / "sft" / "model.safetensors").write_text("old")

    learning.run_seed(42, out)

    assert "EVAL_DATA" not in launcher[0]["env"]  # the launcher's default: data/demo/test.jsonl
    assert launcher[0]["args"] == ["bash", "run_scripts/run_grpo_rec.sh"]
    assert not (out / "sft" / "model.safetensors").exists()


def test_reported_runs_are_recorded_under_the_recipe_and_the_table_shows_only_that_recipe(tmp_path, launcher,
                                                                                          monkeypatch, capsys):
    results = tmp_path / "learning.jsonl"
    monkeypatch.setattr(learning, "RESULTS", results)
    monkeypatch.setattr(sys, "argv", ["learning.py", "--seeds", "42", "--out", str(tmp_path / "runs")])
    learning.main()
    monkeypatch.setattr(sys, "argv", ["learning.py", "--dev", "--seeds", "11", "--out", str(tmp_path / "dev")])
    monkeypatch.setattr(learning, "dev_split", lambda: None)
    learning.main()

    entries = [json.loads(line) for line in results.read_text().splitlines()]
    assert [e["seed"] for e in entries] == [42]  # the dev run chose a recipe: not a reported figure
    assert entries[0]["recipe"] == learning.recipe_fingerprint()
    assert entries[0]["metrics"]["grpo"]["acc@25km"] == 92.5

    stale = dict(entries[0], seed=7, recipe="another")  # a run of an earlier recipe
    results.write_text(results.read_text() + json.dumps(stale) + "\n")
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["learning.py", "--table_only", "--markdown"])
    learning.main()
    table = capsys.readouterr().out
    assert "| 42 | 100.0 | 90.0 -> 92.5 |" in table and "| 7 |" not in table
    assert "learning targets hold on 1 of 1 seeds" in table


def test_the_recipe_fingerprint_reads_settings_not_comments(tmp_path, monkeypatch):
    (tmp_path / "data_config").mkdir()
    recipe = tmp_path / "data_config" / "demo.yaml"
    recipe.write_text("learning_rate: 1.0e-4\nbeta: 0.2\n")
    monkeypatch.setattr(recorded, "REPO", tmp_path)
    first = learning.recipe_fingerprint(("data_config/demo.yaml",))
    recipe.write_text("# why the rate is small\nlearning_rate: 1.0e-4  # Adam's drift\nbeta: 0.2\n")
    assert learning.recipe_fingerprint(("data_config/demo.yaml",)) == first
    recipe.write_text("learning_rate: 3.0e-4\nbeta: 0.2\n")
    assert learning.recipe_fingerprint(("data_config/demo.yaml",)) != first
