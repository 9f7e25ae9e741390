"""`[geo-r]` lines on the terminal: what a long stage is doing, how far it is and how long it has left.

The launchers show these lines while the full logs go to files (`python -m open_r1.console STAGE` reads a stage's
output and echoes them, with a "still working" line when a stage goes quiet), so a stage that runs for minutes
(reading a dataset, a warm start, an evaluation) is never silent. A leaf: it imports nothing of geo-r or of the
ML stack.
"""

from __future__ import annotations

import os
import re
import select
import sys
import time
from typing import TextIO

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


def follow(stage: str, quiet: float = 10.0, fd: int = 0, out: TextIO | None = None, echo_all: bool = False) -> None:
    """Echo the `[geo-r]` and `error:` lines of a stage's output (every line with `echo_all`; the rest goes only to
    its log file) and, after `quiet` seconds without one, say that the stage is still working and what it last
    said: a warm start or an evaluation whose log is a file never leaves the terminal silent for long."""
    out = out or sys.stdout
    start = last_shown = time.monotonic()
    last, pending = "", b""
    while True:
        wait = max(0.05, quiet - (time.monotonic() - last_shown))
        if select.select([fd], [], [], wait)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if echo_all or text.startswith(PREFIX) or _ERROR.match(text):
                    out.write(text + "\n")
                    out.flush()
                    last_shown, last = time.monotonic(), text.removeprefix(PREFIX).strip()
        if time.monotonic() - last_shown >= quiet:
            note = f" (last: {last})" if last else ""
            out.write(f"{PREFIX} {stage}: still working, {duration(time.monotonic() - start)} so far{note}\n")
            out.flush()
            last_shown = time.monotonic()


_ERROR = re.compile(r"^([A-Za-z0-9_.-]+: )?error: ")

def main(argv: list[str]) -> None:
    """`[--all] [--outer] STAGE`: --all echoes every line (a torchrun stage), --outer waits a quarter longer, so
    a stage followed inside it (the warm start's own torchrun) says "still working" once, not twice."""
    flags = {arg for arg in argv if arg in ("--all", "--outer")}
    quiet = float(os.environ.get("GEO_R_QUIET_SECONDS", "10"))  # how long a stage may stay silent on the terminal
    stage = " ".join(arg for arg in argv if arg not in flags) or "working"
    follow(stage, quiet=quiet * (1.25 if "--outer" in flags else 1.0), echo_all="--all" in flags)


if __name__ == "__main__":
    main(sys.argv[1:])
