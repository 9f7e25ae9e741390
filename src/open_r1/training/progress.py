"""One readable line per logged GRPO step, so a person can follow a run by eye.

`ProgressLines` replaces the Trainer's per-log dict of 30+ keys on the console with the figures that say whether
a geolocation run learns (reward, parse rate, median error, accuracy within 25 km, speed, ETA), and keeps every
logged value as one JSON object per line in `<output_dir>/metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from open_r1.console import PREFIX
from open_r1.console import duration as _duration


def _number(logs: dict[str, Any], key: str) -> float | None:
    value = logs.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# (logged key, how its value is shown, factor applied first), in the order of the line
_FIGURES = (
    ("reward", "reward {:.3f}", 1),
    ("geo/parse_rate", "parse {:.0f}%", 100),
    ("geo/distance_km_median", "median {:,.0f} km", 1),
    ("geo/within_25km", "<=25 km {:.0f}%", 100),
)


def progress_line(logs: dict[str, Any], step: int, max_steps: int, seconds_per_step: float | None) -> str:
    """The line for one log: step/total, mean reward, parse rate, median km, share within 25 km, s/step, ETA.
    Figures the log lacks (a run without the geo rewards has no km) are left out rather than shown as 0."""
    parts = [f"{PREFIX} step {step:>{len(str(max_steps))}}/{max_steps}"]
    for key, shown, scale in _FIGURES:
        value = _number(logs, key)
        if value is not None:
            parts.append(shown.format(scale * value))
    loss = _number(logs, "loss")
    if _number(logs, "reward") is None and loss is not None:
        parts.append(f"loss {loss:.4f}")
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.1f} s/step")
        parts.append(f"ETA {_duration(seconds_per_step * max(max_steps - step, 0))}")
    return "  ".join(parts)


class ProgressLines(TrainerCallback):
    """Prints `progress_line` on the main process for each training log and appends the full log to
    `<output_dir>/metrics.jsonl`. Remove Trainer's dict printers (`drop_dict_printers`) so the console shows
    these lines alone."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = (time.monotonic(), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        record = {"step": state.global_step, **logs}
        with open(Path(args.output_dir) / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        if "reward" not in logs and "loss" not in logs:
            _say(f"{PREFIX} " + "  ".join(f"{k} {v}" for k, v in logs.items()))
            return
        seconds_per_step = None
        if self._start is not None and state.global_step > self._start[1]:
            seconds_per_step = (time.monotonic() - self._start[0]) / (state.global_step - self._start[1])
        _say(progress_line(logs, state.global_step, state.max_steps, seconds_per_step))


def drop_dict_printers(trainer) -> None:
    """Take Trainer's console printers of raw log dicts (and the tqdm bar that carries them) off `trainer`."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
