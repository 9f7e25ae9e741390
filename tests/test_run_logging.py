"""Log levels of a distributed run: the main process at INFO, the other ranks at WARNING (TRL's
`get_process_log_level()`), so an 8-GPU run says each thing once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from transformers import TrainingArguments
from transformers.utils import logging as hf_logging

from conftest import REPO
from open_r1.training.run import configure_logging


@pytest.fixture
def fake_rank(monkeypatch):
    """Make TrainingArguments believe it is process `rank` (local rank `local`), with logging restored afterwards."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    verbosity = hf_logging.get_verbosity()

    def set_rank(rank: int, local: int | None = None) -> None:
        monkeypatch.setattr(TrainingArguments, "process_index", property(lambda self: rank))
        monkeypatch.setattr(TrainingArguments, "local_process_index",
                            property(lambda self: rank if local is None else local))

    yield set_rank
    hf_logging.set_verbosity(verbosity)


def args(tmp_path, **kwargs) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kwargs)


@pytest.mark.parametrize(("rank", "expected"), [(0, logging.INFO), (1, logging.WARNING), (7, logging.WARNING)])
def test_main_process_logs_info_and_the_others_warnings(tmp_path, fake_rank, rank, expected):
    fake_rank(rank)
    assert configure_logging(args(tmp_path)) == expected
    assert logging.getLogger("open_r1.training.grpo").getEffectiveLevel() == expected
    if rank:
        assert hf_logging.get_verbosity() == logging.WARNING  # quiet model loading before the Trainer starts


def test_log_on_each_node_false_leaves_info_to_rank_zero_alone(tmp_path, fake_rank):
    fake_rank(8, local=0)  # the first process of the second node
    assert configure_logging(args(tmp_path)) == logging.INFO  # TRL's default: each node's first process logs
    assert configure_logging(args(tmp_path, log_on_each_node=False)) == logging.WARNING


def test_log_level_flags_choose_other_levels(tmp_path, fake_rank):
    fake_rank(0)
    assert configure_logging(args(tmp_path, log_level="debug")) == logging.DEBUG
    fake_rank(3)
    assert configure_logging(args(tmp_path, log_level_replica="info")) == logging.INFO


PROBE = """
import logging, sys
from transformers import TrainingArguments
from open_r1.training.run import configure_logging
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
args = TrainingArguments(output_dir=sys.argv[1], use_cpu=True, report_to=[])
configure_logging(args)
logging.getLogger("open_r1.probe").info("info from rank %d", args.process_index)
logging.getLogger("open_r1.probe").warning("warning from rank %d", args.process_index)
"""


@pytest.mark.slow
def test_two_processes_say_info_once(tmp_path):
    """torchrun with 2 CPU processes: the INFO line comes from rank 0 only, warnings from both."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "out")],
                            cwd=REPO, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True,
                            timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert log.count("info from rank") == 1 and "INFO open_r1.probe: info from rank 0" in log, log[-3000:]
    assert "warning from rank 0" in log and "warning from rank 1" in log
