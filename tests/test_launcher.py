"""The real launcher end to end on CPU: 2 processes under DeepSpeed ZeRO-3, a checkpoint, then resume; a finished
run left alone; `kill -9` after a save and a preemption signal, each resumed by the same command to the end on
the rows an uninterrupted run trains on (in memory and streamed); a reward failing on one rank stops every rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter

import psutil
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO

pytestmark = pytest.mark.slow

# 2 prompts a step (4 completions each, one rank's batch), 4 steps, a checkpoint every 2; `logged_rows` records
# the rows each rank scores at each step in $GEO_R_ROW_LOG
ROWS_RUN = ["--reward_funcs", "logged_rows", "--reward_weights", "1.0", "--reward_module",
            "tests/fixtures/rank_rewards.py", "--max_completion_length", "16", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_steps", "4", "--save_steps", "2"]


def launcher_env(output_dir, **extra) -> dict:
    env = dict(os.environ, OUTPUT_DIR=str(output_dir), REPORT_TO="none", CUDA_VISIBLE_DEVICES="", **extra)
    env.pop("MODEL", None)
    return env


def launch(output_dir, *flags, timeout=900, expect_rc=0, **extra) -> str:
    result = subprocess.run(
        ["bash", "run_scripts/run_grpo_rec.sh", *flags],
        cwd=REPO,
        env=launcher_env(output_dir, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = result.stdout + result.stderr
    assert result.returncode == expect_rc, log[-6000:]
    return log


def start(output_dir, *flags, **extra) -> subprocess.Popen:
    """The launcher in the background, its output in <output_dir>.log next to output_dir."""
    output_dir.mkdir(parents=True, exist_ok=True)
    log = open(output_dir.parent / f"{output_dir.name}.log", "w")
    return subprocess.Popen(["bash", "run_scripts/run_grpo_rec.sh", *flags], cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, env=launcher_env(output_dir, **extra), start_new_session=True)


def kill_9(proc: subprocess.Popen) -> None:
    """SIGKILL to the launcher and everything under it (torchrun starts each rank in a session of its own)."""
    try:
        tree = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        tree = []
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def wait_for(condition, proc: subprocess.Popen, what: str, timeout=900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def rank_process(proc: subprocess.Popen, rank: int) -> psutil.Process:
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            env = child.environ()
        except psutil.Error:
            continue
        if env.get("RANK") == str(rank) and "LOCAL_RANK" in env and "python" in child.name():
            return child
    raise AssertionError(f"no rank {rank} process under {proc.pid}")


def rows_by_step(folder) -> tuple[dict, Counter]:
    """({(rank, step): row ids the step trained on, as last recorded}, how often each (rank, step) was scored)."""
    final, seen = {}, Counter()
    for log in sorted(folder.glob("rank*.jsonl")):
        for record in map(json.loads, log.read_text().splitlines()):
            key = (log.stem, record["step"])
            final[key] = record["ids"]
            seen[key] += 1
    return final, seen


def logged_steps(checkpoint) -> list[int]:
    return [h["step"] for h in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if "loss" in h]


def uninterrupted(root, *flags) -> dict:
    """Rows per (rank, step) of a run of ROWS_RUN that nothing interrupts."""
    (root / "rows").mkdir(parents=True)
    launch(root / "run", *ROWS_RUN, *flags, GEO_R_ROW_LOG=str(root / "rows"))
    rows, seen = rows_by_step(root / "rows")
    assert sorted(rows) == [(f"rank{r}", s) for r in range(2) for s in range(4)] and set(seen.values()) == {1}
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("reference")
    return root, uninterrupted(root)


def final_step(folder) -> int:
    return json.loads((folder / "trainer_state.json").read_text())["global_step"]


def test_two_process_zero3_run_checkpoints_updates_weights_and_resumes(tmp_path, tiny_model_dir):
    """The launcher's 2-process ZeRO-3 run: it logs rewards, writes a checkpoint with ZeRO-3 state, saves a whole
    (unpartitioned) model whose weights differ from the base, and a second launch resumes from the checkpoint.

    It checks that the optimizer updated the weights (some tensor differs from the base), not that the model
    learned: two steps are too few to tell a better reward from noise.
    """
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


def test_the_same_command_on_a_finished_run_does_nothing_and_says_so(reference):
    root, _ = reference
    out = root / "run"
    saved = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    log = launch(out, *ROWS_RUN, GEO_R_ROW_LOG=str(root / "rows"))
    assert "nothing to do" in log and "step 4 of 4" in log
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "train.log"} == {
        k: v for k, v in saved.items() if k != "train.log"}, "the finished run's files changed"
    assert rows_by_step(root / "rows")[1].total() == 8, "it trained again"


def kill_9_after_the_first_save_then_resume(tmp_path, *flags) -> tuple[dict, int]:
    """kill -9 the whole launch as soon as checkpoint-2 is complete, run the same command again; the rows per
    (rank, step) it trained on, and how many steps were scored twice (work lost to the kill)."""
    out, rows = tmp_path / "run", tmp_path / "rows"
    rows.mkdir()
    proc = start(out, *ROWS_RUN, *flags, GEO_R_ROW_LOG=str(rows))
    try:
        wait_for((out / "checkpoint-2" / "trainer_state.json").is_file, proc, "checkpoint-2")
    finally:
        kill_9(proc)
    assert not (out / "checkpoint-4").exists() and not (out / "model.safetensors").exists()
    log = launch(out, *ROWS_RUN, *flags, GEO_R_ROW_LOG=str(rows))
    assert f"resuming from {out / 'checkpoint-2'}" in log
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    assert logged_steps(out / "checkpoint-4") == [1, 2, 3, 4], "a step was trained twice or skipped"
    final, seen = rows_by_step(rows)
    assert all(seen[(rank, step)] == 1 for rank in ("rank0", "rank1") for step in (0, 1)), "a saved step trained again"
    retrained = max(sum(n - 1 for (r, _), n in seen.items() if r == rank) for rank in ("rank0", "rank1"))
    print(f"kill -9 right after checkpoint-2: {retrained} step(s) of work scored again after the resume")
    return final, retrained


def test_kill_9_after_a_save_resumes_on_the_same_rows_to_the_end(tmp_path, reference):
    final, retrained = kill_9_after_the_first_save_then_resume(tmp_path)
    assert final == reference[1], "the resumed run trained on other rows than the uninterrupted one"
    assert retrained <= 1


def test_kill_9_after_a_save_resumes_a_streamed_run_on_the_same_rows(tmp_path):
    expected = uninterrupted(tmp_path / "reference", "--streaming", "true")
    final, retrained = kill_9_after_the_first_save_then_resume(tmp_path, "--streaming", "true")
    assert final == expected, "the resumed stream trained on other rows than the uninterrupted one"
    assert retrained <= 1


def test_a_preemption_signal_on_one_rank_saves_stops_every_rank_and_the_same_command_finishes(tmp_path, reference):
    """SIGUSR1 (Slurm's warning) to rank 1 alone during step 1: both ranks save the same checkpoint and stop
    cleanly without a final model; the same command resumes there and ends at max_steps on the same rows."""
    out, rows = tmp_path / "run", tmp_path / "rows"
    rows.mkdir()
    proc = start(out, *ROWS_RUN, GEO_R_ROW_LOG=str(rows))
    try:
        wait_for((rows / "rank1.jsonl").is_file, proc, "the first step's rewards")
        rank_process(proc, 1).send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            kill_9(proc)
    log = (tmp_path / "run.log").read_text()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert saved and saved[-1] < 4, f"no checkpoint before the end: {saved}\n{log[-4000:]}"
    assert f"preemption signal on 1 rank(s): saving checkpoint-{saved[-1]} and stopping" in log
    assert not (out / "model.safetensors").exists(), "a preempted run saved a final model"

    log = launch(out, *ROWS_RUN, GEO_R_ROW_LOG=str(rows))
    assert f"resuming from {out / f'checkpoint-{saved[-1]}'}" in log
    assert logged_steps(out / "checkpoint-4") == [1, 2, 3, 4]
    assert rows_by_step(rows)[0] == reference[1]
    assert (out / "model.safetensors").is_file()


def test_a_reward_failing_on_one_rank_stops_every_rank_with_its_traceback(tmp_path):
    log = launch(tmp_path / "run", "--reward_funcs", "logged_rows", "fails_on_one_rank", "--reward_weights", "1.0",
                 "1.0", "--reward_module", "tests/fixtures/rank_rewards.py", "--max_completion_length", "8",
                 "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_steps", "6",
                 "--reward_max_failing_steps", "2", expect_rc=1, GEO_R_FAIL_RANK="1")
    assert log.count("reward 'fails_on_one_rank' failed on 2 consecutive steps") >= 2, "not every rank stopped"
    assert "ZeroDivisionError" in log and "fails_on_one_rank" in log
    assert not (tmp_path / "run" / "model.safetensors").exists()
