"""Find the checkpoint to resume from, and refuse to resume from a broken one silently."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be resumed from."""


def checkpoint_problem(folder: Path) -> str | None:
    """What is wrong with a `checkpoint-N` folder, or None when it looks complete."""
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing (the save was probably interrupted)"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return f"trainer_state.json is corrupt: {err}"
    has_weights = any((folder / name).is_file() for name in WEIGHT_FILES)
    has_deepspeed = any(p.name.startswith("global_step") for p in folder.iterdir() if p.is_dir())
    if not (has_weights or has_deepspeed):
        return f"no model weights ({', '.join(WEIGHT_FILES)}) and no DeepSpeed global_step* folder"
    return None


def find_resume_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` in `output_dir`; broken newer ones are reported and skipped.

    Broken folders are left where they are (nothing is deleted): the warning names each one and why.
    Raises CheckpointError when checkpoints exist but none is complete.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))
    )
    problems = []
    for _, folder in reversed(found):
        problem = checkpoint_problem(folder)
        if problem is None:
            for bad, why in problems:
                logger.warning("skipping broken checkpoint %s: %s", bad, why)
            return folder
        problems.append((folder, problem))
    if problems:
        details = "; ".join(f"{folder}: {why}" for folder, why in problems)
        raise CheckpointError(
            f"{output_dir} holds checkpoints but none can be resumed from ({details}). Move them away to start "
            f"fresh, or pass --resume_from_checkpoint with a complete one."
        )
    return None
