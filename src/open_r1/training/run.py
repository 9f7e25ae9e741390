"""Run housekeeping that GRPO and SFT share: where a run resumes from, and where it reports to."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers import TrainingArguments

from open_r1.modeling.checkpoints import find_resume_checkpoint

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


def resume_checkpoint(args: TrainingArguments) -> str | None:
    """The checkpoint `train()` resumes from: the user's choice, else the newest complete one in output_dir."""
    if args.resume_from_checkpoint:
        return args.resume_from_checkpoint
    found = find_resume_checkpoint(args.output_dir)
    if found is not None:
        logger.info("resuming from %s", found)
    return str(found) if found else None


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
