"""The real launcher end to end on CPU: 2 processes under DeepSpeed ZeRO-3, checkpoints and a whole saved model; a
finished run left alone, and resumed when given more steps; `kill -9` after a save and a preemption signal, each
resumed by the same command to the end on the rows an uninterrupted run trains on (in memory and streamed); each
rank of a streamed run decodes only its share of the images; a reward failing on one rank stops every rank.

Every launch costs about a minute of start-up on 2 CPU cores, so tests that only look at a run share it (module
fixtures): the uninterrupted in-memory run and the uninterrupted streamed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
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


def with_steps(flags: list[str], max_steps: int) -> list[str]:
    """flags with --max_steps set to max_steps."""
    at = flags.index("--max_steps") + 1
    return [*flags[:at], str(max_steps), *flags[at + 1:]]


def launcher_env(output_dir, **extra) -> dict:
    """The embedded default (no MODEL), pinned to what these tests are about: GRPO from the base tiny model under
    ZeRO-3, with no SFT warm start and no held-out evaluation around it, whatever the launcher's defaults are."""
    env = dict(os.environ, OUTPUT_DIR=str(output_dir), REPORT_TO="none", CUDA_VISIBLE_DEVICES="", WARM_START="none",
               EVAL="0", DS_CONFIG=str(REPO / "local_scripts" / "zero3_cpu.json"))
    env.update(extra)
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


# Counts, per rank, the images a run decodes: a sitecustomize on the ranks' PYTHONPATH wraps `load_image`.
DECODE_COUNTER = textwrap.dedent("""
    import os
    if os.environ.get("GEO_R_DECODE_LOG") and os.environ.get("LOCAL_RANK") is not None:
        import open_r1.data.images as images
        real = images.load_image
        def load_image(source, *args, **kwargs):
            path = os.path.join(os.environ["GEO_R_DECODE_LOG"], "rank%s" % os.environ.get("RANK", "0"))
            with open(path, "a") as log:
                log.write("%s\\n" % kwargs.get("where", "?"))  # the row: file:line
            return real(source, *args, **kwargs)
        images.load_image = load_image
""")


def uninterrupted(root, *flags, **extra) -> tuple[dict, str]:
    """Rows per (rank, step) of a run of ROWS_RUN that nothing interrupts, and its log."""
    (root / "rows").mkdir(parents=True)
    log = launch(root / "run", *ROWS_RUN, *flags, GEO_R_ROW_LOG=str(root / "rows"), **extra)
    rows, seen = rows_by_step(root / "rows")
    assert sorted(rows) == [(f"rank{r}", s) for r in range(2) for s in range(4)] and set(seen.values()) == {1}
    return rows, log


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir):
    """(folder, rows per (rank, step), log) of the uninterrupted in-memory run: checkpoints 2 and 4, a model."""
    root = tmp_path_factory.mktemp("reference")
    return root, *uninterrupted(root)


@pytest.fixture(scope="module")
def streamed_reference(tmp_path_factory, tiny_model_dir):
    """(folder, rows per (rank, step), log) of the uninterrupted streamed run, whose ranks log each image they
    decode in <folder>/decodes/rank<RANK>."""
    root = tmp_path_factory.mktemp("streamed")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(DECODE_COUNTER)
    (root / "decodes").mkdir()
    pythonpath = os.pathsep.join(p for p in [str(root / "site"), os.environ.get("PYTHONPATH")] if p)
    return root, *uninterrupted(root, "--streaming", "true", GEO_R_DECODE_LOG=str(root / "decodes"),
                                PYTHONPATH=pythonpath)


def final_step(folder) -> int:
    return json.loads((folder / "trainer_state.json").read_text())["global_step"]


def test_two_process_zero3_run_logs_rewards_checkpoints_and_updates_weights(reference, tiny_model_dir):
    """The launcher's 2-process ZeRO-3 run: it logs rewards, writes a checkpoint with ZeRO-3 state, and saves a
    whole (unpartitioned) model whose weights differ from the base.

    It checks that the optimizer updated the weights (some tensor differs from the base), not that the model
    learned: four steps are too few to tell a better reward from noise.
    """
    root, _, log = reference
    out = root / "run"
    assert "embedded default" in log
    steps = [line for line in log.splitlines() if line.startswith("[geo-r] step ")]
    assert [line.split()[2] for line in steps] == ["1/4", "2/4", "3/4", "4/4"], "no step line per logged step"
    assert all(" reward " in line for line in steps), "no reward was logged"
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert any(p.name.startswith("global_step") for p in (out / "checkpoint-2").iterdir()), "no ZeRO-3 state"
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [h for h in state["log_history"] if "reward" in h], "rewards missing from the trainer state"

    base = load_file(tiny_model_dir / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert set(base) == set(trained), "ZeRO-3 saved a partial (partitioned) model"
    assert any(not torch.equal(base[k], trained[k]) for k in base), "the weights did not change"


def test_the_same_command_on_a_finished_run_does_nothing_and_more_steps_resume_it(reference, tmp_path):
    root, _, _ = reference
    out = root / "run"
    saved = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    log = launch(out, *ROWS_RUN, GEO_R_ROW_LOG=str(root / "rows"))
    assert "nothing to do" in log and "step 4 of 4" in log
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "train.log"} == {
        k: v for k, v in saved.items() if k != "train.log"}, "the finished run's files changed"
    assert rows_by_step(root / "rows")[1].total() == 8, "it trained again"

    # the same run given a fifth step (a copy: the other tests look at the finished one)
    more = tmp_path / "run"
    shutil.copytree(out, more)
    log = launch(more, *with_steps(ROWS_RUN, 5))
    assert "resuming from" in log and "checkpoint-4" in log
    assert final_step(more / "checkpoint-5") == 5


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


def test_kill_9_after_a_save_resumes_a_streamed_run_on_the_same_rows(tmp_path, streamed_reference):
    final, retrained = kill_9_after_the_first_save_then_resume(tmp_path, "--streaming", "true")
    assert final == streamed_reference[1], "the resumed stream trained on other rows than the uninterrupted one"
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


def test_each_rank_decodes_its_share_of_a_streamed_run(streamed_reference):
    """Each rank of the streamed run decodes only its share of the stream's images."""
    root, _, log = streamed_reference
    assert "start-up check:" in log
    steps, per_device, generations = 4, 4, 4  # ROWS_RUN
    decodes = {rank: (root / "decodes" / f"rank{rank}").read_text().splitlines() for rank in range(2)}
    rows = {rank: set(wheres) for rank, wheres in decodes.items()}
    # 2 ranks x 4 completions = 8 a step = 2 prompts, one per rank; the dataloader reads one generation ahead,
    # so the stream yields at most (steps + 1) * 2 rows, every rank reading all of them (the shuffle buffer holds
    # raw lines, never decoded images)
    rows_read = (steps + 1) * 2 * per_device // generations
    print({rank: f"{len(rows[rank])} rows, {len(decodes[rank])} images decoded" for rank in rows},
          f"of at most {rows_read} rows read by each rank")
    assert all(":" in where for wheres in rows.values() for where in wheres), decodes
    for rank in rows:
        assert 1 <= len(rows[rank]) <= rows_read // 2, (rank, decodes[rank])
        assert all(decodes[rank].count(where) <= 4 for where in rows[rank])  # each row once (up to 4 views)
    assert not rows[0] & rows[1]  # no row decoded twice: each prompt's group lives on one rank here


def test_a_reward_failing_on_one_rank_stops_every_rank_with_its_traceback(tmp_path):
    log = launch(tmp_path / "run", "--reward_funcs", "logged_rows", "fails_on_one_rank", "--reward_weights", "1.0",
                 "1.0", "--reward_module", "tests/fixtures/rank_rewards.py", "--max_completion_length", "8",
                 "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_steps", "6",
                 "--reward_max_failing_steps", "2", expect_rc=1, GEO_R_FAIL_RANK="1")
    assert log.count("reward 'fails_on_one_rank' failed on 2 consecutive steps") >= 2, "not every rank stopped"
    assert "ZeroDivisionError" in log and "fails_on_one_rank" in log
    assert not (tmp_path / "run" / "model.safetensors").exists()
