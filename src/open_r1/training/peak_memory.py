"""Peak resident memory of every training process a command starts, read per rank from /proc.

The kernel keeps each process's high-water mark (`VmHWM`), so polling it misses nothing but the last poll
interval before a process exits; a rank killed with SIGKILL keeps the peak it had reached at the last poll.
Linux only: elsewhere the figures are empty.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _rank_and_hwm(pid: int) -> tuple[str, int] | None:
    """('rankN' of a torchrun worker or 'pidN' of another python process, its VmHWM in bytes); None otherwise."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    env = dict(kv.split(b"=", 1) for kv in environ if b"=" in kv)
    hwm = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if hwm is None or b"python" not in Path(cmdline[0].decode(errors="replace")).name.encode():
        return None
    if b"TORCHELASTIC_RUN_ID" in env and b"RANK" in env:
        return f"rank{env[b'RANK'].decode()}", hwm
    if any(b"torchrun" in part for part in cmdline[:2]):
        return None  # the torchrun agent itself
    return f"pid{pid}", hwm


@dataclass
class PeakMemory:
    """Per-rank peak resident bytes of a running process tree, refreshed every `interval` seconds."""

    root: int
    interval: float = 0.2
    peaks: dict[str, int] = field(default_factory=dict)
    pids: dict[int, str] = field(default_factory=dict)

    def poll(self) -> None:
        for pid in [self.root, *_descendants(self.root)]:
            found = _rank_and_hwm(pid)
            if found is None:
                continue
            name, hwm = found
            self.pids[pid] = name
            self.peaks[name] = max(self.peaks.get(name, 0), hwm)

    def ranks(self) -> dict[str, int]:
        """The torchrun workers' peaks by rank when there are any, else every python process's."""
        workers = {k: v for k, v in self.peaks.items() if k.startswith("rank")}
        return dict(sorted(workers.items())) if workers else dict(sorted(self.peaks.items()))

    def pid_of(self, name: str) -> int | None:
        return next((pid for pid, n in self.pids.items() if n == name and Path(f"/proc/{pid}").exists()), None)


def run_measured(cmd: list[str], *, env: dict | None = None, log: Path, on_poll=None, interval: float = 0.2):
    """Run `cmd` (output to `log`), watching its processes' peak memory; return (returncode, seconds, PeakMemory).

    `on_poll(peak_memory)` is called after every poll, e.g. to kill a rank at the right moment."""
    start = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
        peak = PeakMemory(proc.pid, interval)
        while proc.poll() is None:
            peak.poll()
            if on_poll is not None:
                on_poll(peak)
            time.sleep(interval)
    return proc.returncode, time.monotonic() - start, peak
