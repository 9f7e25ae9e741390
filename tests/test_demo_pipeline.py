"""The README's main command on the embedded default, shortened: `bash run_scripts/run_grpo_rec.sh` with no GPU
and no MODEL builds the tiny model, trains the warm start, runs GRPO under DeepSpeed, evaluates both models and
prints the table. This checks the wiring (the learning targets are `bench/learning.py`'s): GRPO trains the SFT
model, every printed figure matches one recomputed from the predictions, the console shows one line per step, and
a second launch reuses the warm start.
"""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from haversine import haversine
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
FAILURE_KM = math.pi * 6371.0088  # what an unparsed answer counts as in the mean and median

pytestmark = pytest.mark.slow
SHORT = dict(SFT_FLAGS="--max_steps 6 --save_steps 6 --per_device_train_batch_size 8",
             EVAL_FLAGS="--max_new_tokens 64 --batch_size 48 --question_template {question}")
GRPO_FLAGS = ["--max_steps", "3", "--save_steps", "3", "--per_device_train_batch_size", "8",
              "--max_completion_length", "48"]


def main_command(out: Path, *flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUTPUT_DIR=str(out / "grpo"), WARM_START_DIR=str(out / "sft"), REPORT_TO="none",
               TINY_MODEL_DIR=str(out / "tiny"), CUDA_VISIBLE_DEVICES="", **SHORT)
    env.pop("MODEL", None)
    result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh", *flags], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    (out / "stdout.txt").write_text(main_command(out, *GRPO_FLAGS).stdout)
    return out


def recomputed(predictions: Path) -> dict[str, float]:
    """The report's figures from predictions.jsonl alone, with an independent haversine."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    km = np.array([
        haversine((r["pred_lat"], r["pred_lon"]), (r["true_lat"], r["true_lon"])) if r["parsed"] else FAILURE_KM
        for r in rows
    ])
    parsed = np.array([r["parsed"] for r in rows])
    return {
        "parse rate %": 100 * parsed.mean(),
        "median km": float(np.median(km)),
        "acc@25km %": 100 * float(np.mean(parsed & (km <= 25))),
        "acc@750km %": 100 * float(np.mean(parsed & (km <= 750))),
        "GeoGuessr": float(np.mean(np.where(parsed, 5000 * np.exp(-km / 1492.7), 0.0))),
    }


def printed_table(report: str) -> dict[str, dict[str, float]]:
    lines = report.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    names = re.split(r"\s{2,}", lines[header].strip())[1:]
    table = {}
    for line in lines[header + 2:]:
        cells = line.split()
        if not cells or cells[0] not in ("base", "sft", "grpo"):
            break
        table[cells[0]] = dict(zip(names, map(float, cells[1:])))
    return table


def test_grpo_trains_the_sft_model(demo_run):
    sft = load_file(demo_run / "sft" / "model.safetensors")
    grpo = load_file(demo_run / "grpo" / "model.safetensors")
    base = load_file(demo_run / "tiny" / "model.safetensors")
    assert sft.keys() == grpo.keys()
    changed_by_grpo = [k for k in sft if not np.array_equal(sft[k].float().numpy(), grpo[k].float().numpy())]
    # a ZeRO-2 save writes the tied lm_head.weight too; the base model leaves it to the embedding
    assert set(base) <= set(sft) and set(sft) - set(base) <= {"lm_head.weight"}
    changed_by_sft = [k for k in base if not np.array_equal(sft[k].float().numpy(), base[k].float().numpy())]
    assert len(changed_by_sft) > len(base) // 2
    assert len(changed_by_grpo) > len(sft) // 2
    log = json.loads((demo_run / "grpo" / "checkpoint-3" / "trainer_state.json").read_text())
    assert [h["step"] for h in log["log_history"] if "reward" in h] == [1, 2, 3]
    assert json.loads((demo_run / "grpo" / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def test_the_cpu_warm_start_runs_in_one_process_and_grpo_in_two(demo_run):
    assert re.search(r"node 0 of 1: 1 process\(es\)", (demo_run / "sft.log").read_text())
    assert re.search(r"node 0 of 1: 2 process\(es\)", (demo_run / "stdout.txt").read_text())


def test_the_console_shows_one_readable_line_per_step(demo_run):
    stdout = (demo_run / "stdout.txt").read_text()
    steps = [line for line in stdout.splitlines() if line.startswith("[geo-r] step ")]
    lines = [line for line in steps if " reward " in line]  # GRPO's; the warm start's show its loss
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"], stdout[-3000:]
    assert any(re.search(r"step +\d+/6  loss \d", line) for line in steps), stdout[-3000:]
    for line in lines:
        assert re.search(r"reward -?\d+\.\d{3}  parse \d+%", line) and "s/step  ETA" in line, line
    assert "{'loss'" not in stdout and "'reward':" not in stdout  # Trainer's raw dicts are in metrics.jsonl
    logged = [json.loads(line) for line in (demo_run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "reward" in r] == [1, 2, 3]
    assert re.search(r"\[geo-r\] finished in \d+m\d\ds", stdout)


def test_the_table_prints_the_figures_recomputed_from_predictions(demo_run):
    report = (demo_run / "grpo" / "report.txt").read_text()
    assert report in (demo_run / "stdout.txt").read_text()
    table = printed_table(report)
    assert list(table) == ["sft", "grpo"]
    for stage, printed in table.items():
        expected = recomputed(demo_run / stage / "eval" / "predictions.jsonl")
        assert printed.keys() == expected.keys()
        for name, value in expected.items():
            assert printed[name] == pytest.approx(value, abs=0.051), (stage, name)  # printed to one decimal
    assert (demo_run / "grpo" / "grpo_curve.png").stat().st_size > 1000
    assert re.search(r"GRPO mean reward: -?[\d.]+ over the first quarter of steps -> -?[\d.]+ over the last "
                     r"quarter \(3 steps\)", report)


def test_a_second_launch_reuses_the_warm_start_and_its_evaluation(demo_run):
    weights = (demo_run / "sft" / "model.safetensors").stat().st_mtime_ns
    result = main_command(demo_run, "--max_steps", "4", *GRPO_FLAGS[2:])  # one step more: the run resumes
    assert f"warm start: reusing {demo_run / 'sft'}" in result.stdout
    assert "evaluation of the SFT model: reusing" in result.stdout
    assert (demo_run / "sft" / "model.safetensors").stat().st_mtime_ns == weights
    assert [line.split()[2] for line in result.stdout.splitlines() if line.startswith("[geo-r] step ")] == ["4/4"]
