"""`[geo-r]` lines on the terminal: what a long stage is doing, how far it is and how long it has left.

The launchers show these lines while the full logs go to files, so a stage that runs for minutes (reading a
dataset, evaluating, a warm start) is never silent. A leaf: it imports nothing of geo-r or of the ML stack.
"""

from __future__ import annotations

import os
import sys
import time

PREFIX = "[geo-r]"


def say(line: str) -> None:
    """One `[geo-r]` line on stdout, flushed, from the main process only (torchrun's other ranks stay quiet)."""
    if os.environ.get("RANK", "0") == "0":
        sys.stdout.write(f"{PREFIX} {line}\n")
        sys.stdout.flush()


def duration(seconds: float) -> str:
    """2h05m, 3m07s or 42s."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """`what: done/total unit (rate, ETA)` lines, at most one every `every` seconds (the last one always)."""

    def __init__(self, what: str, total: int | None, unit: str = "rows", every: float = 10.0):
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.start = self.last = time.monotonic()

    def line(self, done: int) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = done / elapsed
        speed = f"{rate:.2f} {self.unit}/s" if rate < 10 else f"{rate:,.0f} {self.unit}/s"
        eta = f", ETA {duration((self.total - done) / rate)}" if self.total and rate > 0 and done < self.total else ""
        total = f"{self.total:,}" if self.total else "?"
        return f"{self.what}: {done:,}/{total} {self.unit} ({speed}{eta}, {duration(elapsed)} so far)"

    def __call__(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every or (self.total is not None and done >= self.total):
            self.last = now
            say(self.line(done))
