"""Find the checkpoint to resume from, refuse to resume from a broken one silently, and tell a finished run."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from open_r1.errors import InputError

logger = logging.getLogger(__name__)

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
FINISHED_MARKER = "run_finished.json"  # written into output_dir once the final model is saved
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


class CheckpointError(InputError):
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


def checkpoint_state(folder: str | Path) -> dict:
    """The trainer state a checkpoint was saved with (`global_step`, `max_steps`, ...)."""
    return json.loads((Path(folder) / "trainer_state.json").read_text())


def finished_reason(output_dir: str | Path, checkpoint: str | Path | None, max_steps: int) -> str | None:
    """Why a run in `output_dir` has nothing left to train, or None when it has.

    A run is finished when its final-save marker (`FINISHED_MARKER`) or the checkpoint it would resume from
    has reached `max_steps` (when `max_steps` <= 0, epochs decide: the step count the run computed and saved).
    Resuming from such a checkpoint would train one step past the end and overwrite the final model. A larger
    `max_steps` than the finished run's continues it from its newest checkpoint.
    """
    marker = Path(output_dir) / FINISHED_MARKER
    if marker.is_file():
        try:
            done = json.loads(marker.read_text())
            step, target = int(done["global_step"]), max_steps if max_steps > 0 else int(done["max_steps"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            logger.warning("ignoring unreadable %s: %s", marker, err)
        else:
            if step >= target:
                return f"{output_dir} holds a finished run ({marker.name}: step {step} of {target})"
    if checkpoint is not None:
        try:
            state = checkpoint_state(checkpoint)
        except (OSError, ValueError):
            return None  # a --resume_from_checkpoint without a readable state: the Trainer says what is wrong
        step, target = int(state.get("global_step", 0)), max_steps if max_steps > 0 else int(state.get("max_steps", 0))
        if target > 0 and step >= target:
            return (
                f"{checkpoint} is at step {step} of {target}: training is complete (if the final save to "
                f"{output_dir} was cut short, the trained weights are in {checkpoint})"
            )
    return None


def restore_weights_for_resume(model, checkpoint: str | Path | None, args) -> bool:
    """Load `checkpoint`'s weights into `model` the way `from_pretrained` reads them, before `Trainer.train`
    resumes from it; returns whether it did.

    Without DeepSpeed, `Trainer` resumes by `load_state_dict` on the checkpoint's saved tensors, but transformers
    saves Qwen2.5-VL under its original key names (`visual.*`, `model.*`), which `from_pretrained` maps back and
    `load_state_dict` does not: the vision tower would silently resume from its initial weights (transformers only
    logs "missing keys"). DeepSpeed resumes from its own engine states, and a PEFT checkpoint holds adapter keys
    that Trainer maps itself, so both are left to Trainer.
    """
    if checkpoint is None or getattr(args, "deepspeed", None) or getattr(model, "peft_config", None):
        return False
    import torch

    saved = type(model).from_pretrained(checkpoint, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(saved.state_dict(), strict=False)
    if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
        raise RuntimeError(f"{checkpoint}: its weights do not fit the model (missing {missing[:5]}, unexpected "
                           f"{unexpected[:5]})")
    logger.info("resuming: weights of %s loaded with transformers' key mapping", checkpoint)
    return True
