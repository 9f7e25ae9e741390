"""Run housekeeping that GRPO and SFT share: where a run resumes from, and where it reports to."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainingArguments

from open_r1.modeling.checkpoints import (
    FINISHED_MARKER,
    CheckpointError,
    find_resume_checkpoint,
    finished_reason,
)

logger = logging.getLogger(__name__)


def resolve_reporting(args: TrainingArguments) -> TrainingArguments:
    """Log to wandb offline unless the user is logged in, so a run never stops to ask for a key."""
    report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    if "wandb" in report_to and "WANDB_MODE" not in os.environ and not os.environ.get("WANDB_API_KEY"):
        netrc = Path.home() / ".netrc"
        logged_in = netrc.is_file() and "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace")
        if not logged_in:
            os.environ["WANDB_MODE"] = "offline"
            logger.info("wandb: not logged in, logging offline (sync later with `wandb sync`)")
    return args


@dataclass(frozen=True)
class ResumePoint:
    """Where a run starts: `checkpoint` to resume from (None: the beginning); `finished` says why there is
    nothing left to train, when there is not."""

    checkpoint: str | None = None
    finished: str | None = None


def _decide(args: TrainingArguments) -> ResumePoint:
    checkpoint = args.resume_from_checkpoint
    if not checkpoint:
        found = find_resume_checkpoint(args.output_dir)
        checkpoint = str(found) if found else None
    finished = finished_reason(args.output_dir, checkpoint, args.max_steps)
    if finished is None and checkpoint is None and (Path(args.output_dir) / FINISHED_MARKER).is_file():
        logger.warning("%s holds a finished shorter run and no checkpoint to continue it from: training from the "
                       "start, which overwrites its final model", args.output_dir)
    return ResumePoint(checkpoint, finished)


def _shared_decision(args: TrainingArguments) -> ResumePoint:
    """`_decide` on rank 0, broadcast to every rank (a failure there stops every rank, none waits forever)."""
    from accelerate.utils import broadcast_object_list

    decision: list = [None]
    failure = None
    if args.process_index == 0:  # also sets up torch.distributed the way the Trainer will
        try:
            decision[0] = _decide(args)
        except Exception as err:
            failure, decision[0] = err, f"{type(err).__name__}: {err}"
    broadcast_object_list(decision, from_process=0)
    point = decision[0]
    if failure is not None:
        raise failure
    if isinstance(point, str):
        raise CheckpointError(f"rank 0 could not choose where to resume: {point}")
    if point.checkpoint and not point.finished and args.process_index == 0:
        logger.info("resuming from %s", point.checkpoint)
    return point


def resume_point(args: TrainingArguments) -> ResumePoint:
    """Where this run starts, decided once on rank 0 and broadcast, so no two ranks resume from different
    checkpoints (a file system can show ranks different folders while a save is being written or synced)."""
    point = _shared_decision(args)
    if point.finished and args.process_index == 0:
        logger.info("nothing to do: %s. Raise --max_steps to train further, or choose another --output_dir.",
                    point.finished)
    return point


def resume_checkpoint(args: TrainingArguments) -> str | None:
    """The checkpoint `train()` resumes from: the user's choice, else the newest complete one in output_dir (the
    same on every rank). Unlike `resume_point`, a finished run's last checkpoint is returned as it is."""
    return _shared_decision(args).checkpoint


def mark_finished(args: TrainingArguments, global_step: int, max_steps: int) -> None:
    """Record in output_dir (on the main process, after the final save) that the run reached `max_steps`, so the
    same command again does nothing."""
    if global_step < max_steps or not args.should_save:
        return
    marker = Path(args.output_dir) / FINISHED_MARKER
    partial = marker.with_suffix(".tmp")
    partial.write_text(json.dumps({"global_step": global_step, "max_steps": max_steps}) + "\n")
    os.replace(partial, marker)


def configure_logging(args: TrainingArguments) -> int:
    """Log at INFO on the main process and at WARNING on the others, as TRL's scripts do with
    `args.get_process_log_level()`, so an 8-GPU run says each thing once; returns this process's level.

    The main process is local rank 0 of each node (`--log_on_each_node`, the default), or rank 0 alone with
    `--log_on_each_node false`. `--log_level` and `--log_level_replica` choose other levels; transformers' own
    default for the main process (`passive`: WARNING) is raised to INFO here, since geo-r reports its progress
    at INFO. The level is set on the root logger, which geo-r's loggers and Python-logging libraries follow; on the
    other processes also on transformers' logger, so model loading is quiet there too (the Trainer sets it again
    when it starts, from the same arguments).
    """
    from transformers.utils import logging as hf_logging

    level = args.get_process_log_level()
    if args.should_log and args.log_level == "passive":
        level = logging.INFO
    logging.getLogger().setLevel(level)
    if not args.should_log:
        hf_logging.set_verbosity(level)
    return level
