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
