"""The training layer's decisions, each checked without a training run."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
from PIL import Image
from transformers import AutoProcessor
from trl import GRPOConfig, ModelConfig

from open_r1.modeling.checkpoints import FINISHED_MARKER, CheckpointError, find_resume_checkpoint, finished_reason
from open_r1.modeling.loading import ensure_left_padding, load_model, load_processor
from open_r1.rewards.registry import RewardFaultError, RewardFaults
from open_r1.training.callbacks import EpochSeedCallback, PreemptionCallback, RewardFaultCallback
from open_r1.training.grpo import resolve_generation_backend
from open_r1.training.run import mark_finished, resolve_reporting, resume_point


def make_checkpoint(folder, step, *, state=True, weights=True, max_steps=None):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps or step}))
    if weights:
        (path / "model.safetensors").write_bytes(b"x")
    return path


def test_resume_picks_the_newest_complete_checkpoint_and_names_broken_ones(tmp_path, caplog):
    make_checkpoint(tmp_path, 5)
    make_checkpoint(tmp_path, 10)
    broken = make_checkpoint(tmp_path, 15, state=False)
    with caplog.at_level("WARNING"):
        assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert str(broken) in caplog.text and "trainer_state.json is missing" in caplog.text
    assert broken.exists(), "a broken checkpoint must be left in place"


def test_resume_refuses_when_every_checkpoint_is_broken(tmp_path):
    make_checkpoint(tmp_path, 3, weights=False)
    bad = make_checkpoint(tmp_path, 6)
    (bad / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint-6: trainer_state.json is corrupt.*checkpoint-3: no model weights"):
        find_resume_checkpoint(tmp_path)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert find_resume_checkpoint(tmp_path) is None
    assert find_resume_checkpoint(tmp_path / "absent") is None


def test_processor_always_pads_left_and_applies_pixel_bounds(tiny_model_dir):
    right = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="right")
    assert ensure_left_padding(right).tokenizer.padding_side == "left"
    small = load_processor(str(tiny_model_dir), min_pixels=28 * 28, max_pixels=56 * 56)
    large = load_processor(str(tiny_model_dir), min_pixels=28 * 28, max_pixels=112 * 112)
    image = Image.new("RGB", (224, 224))
    grid = lambda p: p.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod().item()  # noqa: E731
    assert grid(small) < grid(large)
    assert small.tokenizer.padding_side == "left"


def test_model_loads_whatever_its_folder_is_called(tmp_path, tiny_model_dir):
    renamed = tmp_path / "sft-run3-final"
    shutil.copytree(tiny_model_dir, renamed)
    model = load_model(ModelConfig(model_name_or_path=str(renamed)))
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"


def test_missing_vllm_falls_back_with_a_notice(caplog, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else object())
    args = GRPOConfig("out", use_vllm=True, use_cpu=True, bf16=False)
    with caplog.at_level("WARNING"):
        assert resolve_generation_backend(args).use_vllm is False
    assert "vLLM is not installed" in caplog.text


def test_wandb_logs_offline_without_a_login(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    resolve_reporting(GRPOConfig("out", report_to=["wandb"], use_cpu=True, bf16=False))
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "k")
    resolve_reporting(GRPOConfig("out", report_to=["wandb"], use_cpu=True, bf16=False))
    assert "WANDB_MODE" not in os.environ


def test_a_finished_run_is_recognised_by_its_marker_or_its_newest_checkpoint(tmp_path):
    done = make_checkpoint(tmp_path, 4)
    assert "step 4 of 4: training is complete" in finished_reason(tmp_path, done, 4)
    assert finished_reason(tmp_path, done, 6) is None  # a larger max_steps continues the run
    assert finished_reason(tmp_path, done, -1) is not None  # epochs: the step count the run saved
    assert finished_reason(tmp_path, make_checkpoint(tmp_path, 2, max_steps=4), -1) is None

    saved_no_checkpoints = tmp_path / "no_checkpoints"
    saved_no_checkpoints.mkdir()
    (saved_no_checkpoints / FINISHED_MARKER).write_text(json.dumps({"global_step": 3, "max_steps": 3}))
    assert FINISHED_MARKER in finished_reason(saved_no_checkpoints, None, 3)
    assert finished_reason(saved_no_checkpoints, None, 5) is None
    (saved_no_checkpoints / FINISHED_MARKER).write_text("{cut short")
    assert finished_reason(saved_no_checkpoints, None, 3) is None


def test_resume_point_and_the_final_marker(tmp_path):
    args = GRPOConfig(str(tmp_path), max_steps=4, use_cpu=True, bf16=False, report_to=[])
    assert resume_point(args).checkpoint is None and not resume_point(args).finished
    make_checkpoint(tmp_path, 2, max_steps=4)
    point = resume_point(args)
    assert point.checkpoint == str(tmp_path / "checkpoint-2") and point.finished is None
    mark_finished(args, 3, 4)  # a run that stopped early is not finished
    assert not (tmp_path / FINISHED_MARKER).exists()
    mark_finished(args, 4, 4)
    assert "step 4 of 4" in resume_point(args).finished
    (tmp_path / "checkpoint-2" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError):
        resume_point(args)


RANKS_SCRIPT = """
import json, os, sys
from transformers import TrainingArguments
from open_r1.training.run import resume_point
rank = int(os.environ["RANK"])
point = resume_point(TrainingArguments(sys.argv[1 + rank], max_steps=4, use_cpu=True, report_to=[]))
print("DECISION", json.dumps([rank, point.checkpoint, point.finished]), flush=True)
# leave the process group before exiting: a process that exits with gloo's threads still running can abort
# ("terminate called without an active exception"), which fails the launch after the decision was made
import torch.distributed
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_every_rank_resumes_from_the_checkpoint_rank_0_chose(tmp_path):
    """2 processes that see different folders (as ranks on a file system that has not caught up can): rank 1
    alone would call the run finished at checkpoint-4; both take rank 0's checkpoint-2."""
    import subprocess
    import sys

    seen_by_0, seen_by_1 = tmp_path / "rank0_view", tmp_path / "rank1_view"
    make_checkpoint(seen_by_0, 2, max_steps=4)
    make_checkpoint(seen_by_1, 4)
    (tmp_path / "ranks.py").write_text(RANKS_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "ranks.py"), str(seen_by_0), str(seen_by_1)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    decisions = sorted(json.loads(line.split("DECISION ", 1)[1]) for line in result.stdout.splitlines()
                       if "DECISION " in line)
    chosen = str(seen_by_0 / "checkpoint-2")
    assert decisions == [[0, chosen, None], [1, chosen, None]]


def test_a_preemption_signal_saves_and_stops_at_the_step_boundary():
    from transformers import TrainerControl, TrainerState

    args = GRPOConfig("out", use_cpu=True, bf16=False, report_to=[])
    callback, seen = PreemptionCallback(), []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))  # stands in for "exit"
    try:
        callback.on_train_begin(args, TrainerState(), TrainerControl())
        control = TrainerControl()
        callback.on_step_end(args, TrainerState(global_step=1, max_steps=4), control)
        assert not (control.should_save or control.should_training_stop or callback.stopped)
        os.kill(os.getpid(), signal.SIGUSR1)  # handled: the process lives on
        os.kill(os.getpid(), signal.SIGTERM)  # a later signal changes nothing while the save goes on
        assert callback.received == signal.SIGUSR1 and not seen
        callback.on_step_end(args, TrainerState(global_step=2, max_steps=4), control)
        assert control.should_save and control.should_training_stop and callback.stopped
        callback.on_train_end(args, TrainerState(), TrainerControl())
        os.kill(os.getpid(), signal.SIGTERM)  # after training, the handler before is back
        assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    finally:
        callback.restore()
        signal.signal(signal.SIGTERM, before)

    last = PreemptionCallback()
    last.received = signal.SIGTERM
    control = TrainerControl()
    last.on_step_end(args, TrainerState(global_step=4, max_steps=4), control)
    assert not last.stopped, "a signal during the last step: the run ends as usual, final model and all"


class FakeReward:
    def __init__(self, name):
        self.__name__ = name
        self.faults = RewardFaults()


def test_a_reward_failing_step_after_step_stops_the_run_with_its_traceback():
    from transformers import TrainerControl, TrainerState

    good, bad = FakeReward("good"), FakeReward("bad")
    callback = RewardFaultCallback([good, bad, print], max_failing_steps=3)
    args, control = GRPOConfig("out", use_cpu=True, bf16=False, report_to=[]), TrainerControl()

    def step(bad_failed, calls=1):
        for _ in range(calls):
            good.faults.record(0, None)
            bad.faults.record(bad_failed, f"raised on 4 completions: Traceback ... KeyError {bad_failed}")
        callback.on_step_end(args, TrainerState(global_step=1), control)

    step(2), step(0), step(1), step(4)
    step(1, calls=0)  # a step that reused generations: no verdict either way
    assert callback.streaks == [0, 2]
    with pytest.raises(RewardFaultError, match=r"(?s)reward 'bad' failed on 3 consecutive steps.*KeyError 3"):
        step(3)
    never = RewardFaultCallback([bad], max_failing_steps=0)
    for _ in range(20):
        bad.faults.record(1, "x")
        never.on_step_end(args, TrainerState(), control)


def test_every_epoch_draws_the_same_rows_whether_resumed_or_not():
    """TRL's RepeatSampler runs one generator on from epoch to epoch, so a fresh one (a resumed run) would draw
    epoch 0's order for any epoch; reseeded per epoch, a resumed run draws the uninterrupted run's order."""
    from torch.utils.data import DataLoader
    from transformers import TrainerControl, TrainerState
    from trl.trainer.utils import RepeatSampler

    def loader():
        return DataLoader(list(range(16)), batch_size=4, sampler=RepeatSampler(range(16), 2, batch_size=2, seed=3))

    args, callback = GRPOConfig("out", use_cpu=True, bf16=False, report_to=[]), EpochSeedCallback()
    trl_order = [b.tolist() for b in loader()]
    continuous, uninterrupted = loader(), []
    for epoch in range(3):
        callback.on_epoch_begin(args, TrainerState(epoch=float(epoch)), TrainerControl(), train_dataloader=continuous)
        uninterrupted.append([b.tolist() for b in continuous])
    assert uninterrupted[0] == trl_order and trl_order != uninterrupted[2] != uninterrupted[1]
    resumed = loader()
    callback.on_epoch_begin(args, TrainerState(epoch=2.25), TrainerControl(), train_dataloader=resumed)
    assert [b.tolist() for b in resumed] == uninterrupted[2]


def test_flat_groups_are_counted_on_the_weighted_total_with_a_relative_tolerance():
    import torch

    from open_r1.training.reward_spread import flat_group_share

    same = [[2.136, 0.5]] * 4  # one group of 4 completions with identical rewards
    varied = [[2.136, 0.5], [2.136, 0.0], [1.0, 0.5], [2.136, 0.5]]
    rewards = torch.tensor(same + varied, dtype=torch.float32)
    assert flat_group_share(rewards, torch.tensor([1.0, 1.0]), 4) == 0.5
    # the second function's differences are all that tells the second group apart: weight 0 flattens it
    rewards = torch.tensor(same + [[2.136, 0.5], [2.136, 0.0], [2.136, 0.5], [2.136, 0.5]])
    assert flat_group_share(rewards, torch.tensor([1.0, 1.0]), 4) == 0.5
    assert flat_group_share(rewards, torch.tensor([1.0, 0.0]), 4) == 1.0
    # float32 noise of big rewards is flat; a real difference of 5e-3 is not
    big = torch.tensor([[1000.0], [1000.0 + 3e-5], [1000.0], [1000.0 + 5e-3]])
    assert flat_group_share(big, torch.tensor([1.0]), 2) == 0.5
    # NaN (nothing to score) is left out; a group with fewer than two scored completions teaches nothing
    nan = float("nan")
    rewards = torch.tensor([[nan], [1.0], [nan], [nan], [0.0], [1.0]])
    assert flat_group_share(rewards, torch.tensor([1.0]), 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("flat", "headline"),
    [(1.0, "NO LEARNING SIGNAL"), (0.95, "LITTLE LEARNING SIGNAL"), (0.5, None)],
)
def test_the_no_signal_warning_reads_the_share_of_flat_groups(caplog, flat, headline):
    from transformers import TrainerControl, TrainerState

    from open_r1.training.callbacks import NoLearningSignalCallback

    callback, state = NoLearningSignalCallback(patience=3), TrainerState()
    with caplog.at_level("WARNING"):
        for step in range(1, 4):
            state.global_step = step
            # TRL's own measure says every group has a spread: only the flat share can tell
            logs = {"reward": 2.1, "reward_std": 0.4, "frac_reward_zero_std": 0.0, "frac_reward_flat_groups": flat}
            callback.on_log(None, state, TrainerControl(), logs=logs)
    if headline is None:
        assert "LEARNING SIGNAL" not in caplog.text
    else:
        assert headline in caplog.text and "at step 3" in caplog.text


@pytest.mark.parametrize(
    ("within_25km", "headline"),
    [([1.0, 1.0, 1.0], "ROWS SOLVED"), ([1.0, 0.875, 1.0], "NO LEARNING SIGNAL"), ([0.0, 0.0, 0.0], "NO LEARNING SIGNAL")],
)
def test_flat_groups_of_answers_all_within_25_km_are_called_solved_not_a_missing_signal(caplog, within_25km, headline):
    """As seed 42 of the demo did on its GRPO photos: three steps in which all 64 completions landed within 25 km and
    scored the same. The format and label causes would mislead there; one wrong log in the streak keeps them."""
    from transformers import TrainerControl, TrainerState

    from open_r1.training.callbacks import NoLearningSignalCallback

    callback, state = NoLearningSignalCallback(patience=3), TrainerState()
    with caplog.at_level("WARNING"):
        for step, share in enumerate(within_25km, start=1):
            state.global_step = step
            logs = {"reward": 2.5 * share, "reward_std": 0.0, "frac_reward_zero_std": 1.0,
                    "frac_reward_flat_groups": 1.0, "geo/within_25km": share}
            callback.on_log(None, state, TrainerControl(), logs=logs)
    assert headline in caplog.text and "at step 3" in caplog.text
    assert ("LEARNING SIGNAL" in caplog.text) is (headline != "ROWS SOLVED")
    assert ("--drop_solved" in caplog.text) and (("answer format" in caplog.text) is (headline != "ROWS SOLVED"))


def test_the_no_signal_warning_is_given_once_by_rank_zero_alone(caplog):
    """Every rank reads the same gathered logs; two processes printed each warning twice."""
    from transformers import TrainerControl, TrainerState

    from open_r1.training.callbacks import NoLearningSignalCallback

    logs = {"reward": 0.0, "reward_std": 0.0, "frac_reward_zero_std": 1.0, "frac_reward_flat_groups": 1.0}
    for rank_zero in (False, True):
        callback, state = NoLearningSignalCallback(patience=2), TrainerState(is_world_process_zero=rank_zero)
        with caplog.at_level("WARNING"):
            for step in range(1, 5):
                state.global_step = step
                callback.on_log(None, state, TrainerControl(), logs=dict(logs))
        assert caplog.text.count("NO LEARNING SIGNAL") == (1 if rank_zero else 0)


@pytest.mark.parametrize(("longest", "hinted"), [(121.0, True), (60.0, False)])
def test_the_no_signal_warning_names_the_completion_budget_when_tool_episodes_fill_it(caplog, longest, hinted):
    """As measured on the zoom demo: every episode zoomed, then TRL cut the answer at 128 tokens (call, crop and
    answer share the budget), and every reward was the same."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from open_r1.training.callbacks import NoLearningSignalCallback

    callback, state = NoLearningSignalCallback(patience=2), TrainerState()
    args = SimpleNamespace(max_completion_length=128)
    logs = {"reward": -0.05, "reward_std": 0.0, "frac_reward_zero_std": 1.0, "frac_reward_flat_groups": 1.0,
            "tools/calls_per_episode": 1.0, "completions/max_length": longest}
    with caplog.at_level("WARNING"):
        for step in (1, 2):
            state.global_step = step
            callback.on_log(args, state, TrainerControl(), logs=dict(logs))
    assert "NO LEARNING SIGNAL" in caplog.text
    assert ("raise --max_completion_length" in caplog.text) is hinted
