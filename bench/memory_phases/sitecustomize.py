"""Per-phase host memory of each training rank, for bench/rehearse.py --phases (never imported by the package).

On a torchrun worker with GEO_R_MEMORY_PHASES=PREFIX set, each phase below (TRL's generation and scoring, the loss
forward, DeepSpeed's backward and optimizer step, checkpoint save and load) writes one line to PREFIX.rankN: the
resident memory before it, its peak (the kernel's high-water mark, reset when the phase starts) and after it."""

import functools
import os
import sys
import threading
import time

PHASES = [  # (module, class, method, label)
    ("accelerate.accelerator", "Accelerator", "prepare", "accelerator.prepare"),
    ("trl.trainer.grpo_trainer", "GRPOTrainer", "_generate_and_score_completions", "generate + score"),
    ("trl.trainer.grpo_trainer", "GRPOTrainer", "compute_loss", "loss forward"),
    ("deepspeed.runtime.engine", "DeepSpeedEngine", "backward", "backward"),
    ("deepspeed.runtime.engine", "DeepSpeedEngine", "step", "optimizer step"),
    ("transformers.trainer", "Trainer", "_save_checkpoint", "checkpoint save"),
    ("transformers.trainer", "Trainer", "save_model", "model save"),
    ("transformers.trainer", "Trainer", "_load_from_checkpoint", "checkpoint load"),
]


def _status(key: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith(key))
    return int(line.split()[1]) / 1e6


def _start(prefix: str) -> None:
    out = open(f"{prefix}.rank{os.environ.get('RANK', '0')}", "a", buffering=1)
    depth = [0]

    def wrap(owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def measured(*args, **kwargs):
            before, started = _status("VmRSS:"), time.monotonic()
            if depth[0] == 0:
                try:
                    with open("/proc/self/clear_refs", "w") as refs:
                        refs.write("5")  # reset the high-water mark to the current resident size
                except OSError:
                    pass
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                out.write(f"{label:20s} before {before:6.2f}  peak {_status('VmHWM:'):6.2f}  after "
                          f"{_status('VmRSS:'):6.2f} GB  {time.monotonic() - started:7.1f} s\n")

        setattr(owner, name, measured)

    def patch_when_imported() -> None:
        todo = list(PHASES)
        while todo:
            for entry in list(todo):
                module, cls, method, label = entry
                owner = getattr(sys.modules.get(module), cls, None)
                if owner is not None and hasattr(owner, method):
                    wrap(owner, method, label)
                    todo.remove(entry)
            time.sleep(0.02)

    threading.Thread(target=patch_when_imported, daemon=True).start()


if os.environ.get("GEO_R_MEMORY_PHASES") and "TORCHELASTIC_RUN_ID" in os.environ:
    _start(os.environ["GEO_R_MEMORY_PHASES"])
