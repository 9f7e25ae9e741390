"""The README's one-command demo, shortened: base eval -> SFT -> GRPO -> eval -> stage report.

The full-length run with its learning targets is `bench/learning.py`; this checks that the pipeline is wired
right: GRPO trains the SFT model (not a copy of the base, not nothing), and every figure the report prints is
the one recomputed here from the predictions each stage wrote.
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


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    env = dict(os.environ, OUTPUT_ROOT=str(out), SFT_STEPS="12", GRPO_STEPS="3", EVAL_TOKENS="96",
               TINY_MODEL_DIR=str(out / "tiny"))
    result = subprocess.run(["bash", "run_scripts/run_demo.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (out / "stdout.txt").write_text(result.stdout)
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
    changed_by_sft = [k for k in sft if not np.array_equal(sft[k].float().numpy(), base[k].float().numpy())]
    assert len(changed_by_sft) > len(sft) // 2
    assert len(changed_by_grpo) > len(sft) // 2
    log = json.loads(sorted((demo_run / "grpo").glob("checkpoint-*/trainer_state.json"))[-1].read_text())
    assert [h["step"] for h in log["log_history"] if "reward" in h] == [1, 2, 3]


def test_report_prints_the_figures_recomputed_from_predictions(demo_run):
    report = (demo_run / "report.txt").read_text()
    assert report in (demo_run / "stdout.txt").read_text()
    table = printed_table(report)
    assert list(table) == ["base", "sft", "grpo"]
    for stage, printed in table.items():
        expected = recomputed(demo_run / stage / "eval" / "predictions.jsonl")
        assert printed.keys() == expected.keys()
        for name, value in expected.items():
            assert printed[name] == pytest.approx(value, abs=0.051), (stage, name)  # printed to one decimal
    assert (demo_run / "grpo_curve.png").stat().st_size > 1000
    assert re.search(r"GRPO mean reward: -?[\d.]+ over the first quarter of steps -> -?[\d.]+ over the last "
                     r"quarter \(3 steps\)", report)
