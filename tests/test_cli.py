"""Errors read at the end: an entry point that fails on bad input prints one line `error: <where: what and how
to fix>` on stderr and exits 2, with no traceback (`--debug` or GEO_R_DEBUG=1 brings it back); a flag or recipe
key an entry does not declare is refused by its parser in the same way; the launcher repeats the first such line
after torchrun's report, so it is the last line a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from trl import TrlParser

from conftest import REPO
from open_r1 import cli
from open_r1.configs import EvalArguments, ModelArguments, SamplingArguments
from open_r1.data.rows import DataError
from open_r1.errors import ArgumentError, InputError
from test_launcher_scripts import fakes, tool  # noqa: F401 (fakes is a fixture)

BAD_LAT = "field 'lat': expected a JSON number, got the string '48.8N'"


def raise_data_error():
    raise DataError("rows.jsonl:2: field 'lat': expected a JSON number,\n  got the string '48.8N'")


def test_an_input_error_ends_with_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["entry"])
    with pytest.raises(SystemExit) as stop:
        cli.run_main(raise_data_error)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: rows.jsonl:2: field 'lat': expected a JSON number, got the string '48.8N'\n"
    assert cli.run_main(lambda: 7) == 7  # a body that ends well returns what it returns


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_brings_the_traceback_back(monkeypatch, how):
    monkeypatch.setenv(cli.DEBUG_ENV, "0")  # recorded, so the "1" run_main sets for --debug is undone afterwards
    monkeypatch.setattr(sys, "argv", ["entry", "--x", "1", *(["--debug"] if how == "flag" else [])])
    if how == "environment":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(DataError, match="48.8N"):
        cli.run_main(raise_data_error)
    assert sys.argv == ["entry", "--x", "1"]  # --debug is no dataclass's flag: the parser never sees it


def test_other_errors_keep_their_traceback(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["entry"])
    with pytest.raises(ZeroDivisionError):
        cli.run_main(lambda: 1 / 0)


def test_the_project_errors_are_input_errors():
    from open_r1.evaluation.harness import SettingsMismatch
    from open_r1.evaluation.loading import ModelLoadError
    from open_r1.evaluation.store import PredictionsError
    from open_r1.modeling.checkpoints import CheckpointError
    from open_r1.rewards.registry import RewardModuleError
    from open_r1.tools.registry import ToolModuleError

    for error in (DataError, ArgumentError, SettingsMismatch, ModelLoadError, PredictionsError, CheckpointError,
                  RewardModuleError, ToolModuleError):
        assert issubclass(error, InputError), error
    assert issubclass(RewardModuleError, ImportError) and issubclass(DataError, ValueError)


def eval_parser() -> TrlParser:
    return TrlParser((EvalArguments, ModelArguments, SamplingArguments))


def test_the_parser_refuses_unknown_flags_recipe_keys_and_bad_values(tmp_path):
    with pytest.raises(ArgumentError, match=r"--streaming true: not a flag of this entry"):
        cli.parse(eval_parser(), ["--model_name_or_path", "m", "--streaming", "true"])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_name_or_path: m\nstreaming: true\nreward_funcs: [format]\n")
    with pytest.raises(ArgumentError, match=r"--config: streaming, reward_funcs: not a setting"):
        cli.parse(eval_parser(), ["--config", str(recipe)])
    with pytest.raises(ArgumentError, match="--batch_size must be at least 1"):
        cli.parse(eval_parser(), ["--model_name_or_path", "m", "--batch_size", "0"])
    with pytest.raises(ArgumentError, match="nope.yaml"):
        cli.parse(eval_parser(), ["--config", str(tmp_path / "nope.yaml")])
    args, model_args, _ = cli.parse(eval_parser(), ["--model_name_or_path", "m", "--num_guesses", "3"])
    assert (args.num_guesses, model_args.model_name_or_path) == (3, "m")


def entry(*argv: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != cli.DEBUG_ENV} | env
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=300)


def test_predict_on_a_missing_photo_prints_one_error_line(tmp_path):
    photo = tmp_path / "missing.jpg"
    result = entry("open_r1.predict", "--model_name_or_path", "m", "--images", str(photo))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: --images {photo}: image not found"
    assert "Traceback" not in result.stdout + result.stderr
    assert "error:" not in result.stdout
    debug = entry("open_r1.predict", "--model_name_or_path", "m", "--images", str(photo), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "image not found" in debug.stderr


def test_an_unknown_flag_is_one_error_line(tmp_path):
    result = entry("open_r1.eval_geo", "--model_name_or_path", "m", "--streaming", "true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: --streaming true: not a flag of eval_geo (--help lists its flags)"


def test_a_reward_weight_count_that_does_not_match_is_one_error_line(tmp_path, tiny_model_dir):
    """Checked once the trainer is wired (after the model loads): still one line, no traceback."""
    result = entry("open_r1.grpo_jsonl", "--config", "data_config/demo.yaml", "--model_name_or_path",
                   str(tiny_model_dir), "--output_dir", str(tmp_path / "out"), "--reward_funcs", "format", "haversine",
                   "--reward_weights", "1.0", "--max_steps", "1", "--report_to", "none", "--use_cpu", "true",
                   CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: --reward_weights has 1 values for 2 rewards")


FAILING_TORCHRUN = """
sys.stdout.flush()
print(os.environ["FAKE_ERROR"], flush=True)
print(os.environ["FAKE_ERROR"], flush=True)  # the other rank
print("Traceback (most recent call last):\\nChildFailedError:\\n====\\ngrpo_jsonl.py FAILED\\n====", flush=True)
sys.exit(1)
"""


def test_the_launcher_repeats_this_launchs_first_error_line_last(tmp_path, fakes):  # noqa: F811
    env, _ = fakes
    tool(tmp_path / "bin", "torchrun", FAILING_TORCHRUN)
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(tmp_path / "out"))
    for error in ("error: a.jsonl:2: field 'lat': first launch", "error: b.jsonl:5: field 'lon': second launch"):
        result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh"], cwd=REPO, env=env | {"FAKE_ERROR": error},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        lines = result.stdout.strip().splitlines()
        assert result.returncode == 2, result.stdout[-3000:]
        assert lines[-1] == error and lines[-2] == "===="  # after torchrun's report, this launch's line
    log = (tmp_path / "out" / "train.log").read_text()
    assert log.count("first launch") == 2  # the log keeps what the processes printed, not the repeat


@pytest.mark.slow
def test_a_bad_row_through_the_launcher_ends_with_its_error_line(tmp_path):
    """The real launcher, torchrun and grpo_jsonl on 2 CPU processes: a row with "lat": "48.8N" stops the run
    before the model loads, and the last line on screen says where and how to fix it."""
    rows = [json.loads(line) for line in (REPO / "data" / "demo" / "grpo.jsonl").read_text().splitlines()[:3]]
    rows[1]["lat"] = "48.8N"
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = dict(os.environ, DATA_PATHS=str(data), IMAGE_FOLDERS=str(REPO / "data" / "demo" / "images"),
               OUTPUT_DIR=str(tmp_path / "out"), REPORT_TO="none", CUDA_VISIBLE_DEVICES="", WARM_START="none",
               EVAL="0")
    for name in ("MODEL", "NPROC_PER_NODE", cli.DEBUG_ENV):
        env.pop(name, None)
    result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 2, result.stdout[-4000:]
    assert lines[-1].startswith(f"error: {data}:2: {BAD_LAT}"), lines[-5:]
    assert "without quotes" in lines[-1]
    assert "ChildFailedError" in result.stdout  # torchrun's report came before it
    assert not any(line.strip().startswith('File "') and "open_r1" in line for line in lines)  # no geo-r traceback
