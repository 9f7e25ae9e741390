"""Soak: run the embedded pipeline (the README's main command on the CPU: 2 processes under ZeRO-3, the tiny
Qwen2.5-VL, the demo data) for a fixed wall time, sample the resident memory of the whole process tree every
interval, and print its growth after warm-up and the steps done. A leak shows as steady growth.

    .venv/bin/python bench/soak.py --minutes 30            # the figure the README reports
    .venv/bin/python bench/soak.py --minutes 3 --interval 20   # a quick look

Training runs far past what fits in the time (`--max_steps` large, no checkpoints), and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def tree_rss_mib(root: psutil.Process) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def steps_done(log: Path) -> int:
    """How many steps the run has logged: its console lines `[geo-r] step N/M ...` (one per logged step)."""
    if not log.is_file():
        return 0
    return sum(1 for line in log.read_text(errors="replace").splitlines() if line.startswith("[geo-r] step "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run before the baseline sample")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="geo-r-soak-"))
    env = dict(os.environ, OUTPUT_DIR=str(out / "run"), REPORT_TO="none", CUDA_VISIBLE_DEVICES="")
    cmd = ["bash", str(REPO / "run_scripts/run_grpo_rec.sh"), "--max_steps", "100000", "--save_strategy", "no",
           "--logging_steps", "1"]
    log_path = out / "soak.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = psutil.Process(proc.pid)
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < args.minutes * 60 and proc.poll() is None:
            time.sleep(args.interval)
            samples.append((time.monotonic() - start, tree_rss_mib(root), steps_done(log_path)))
            t, rss, steps = samples[-1]
            print(f"{t / 60:6.1f} min  rss {rss:8.1f} MiB  steps {steps}", flush=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode not in (None, 0, -signal.SIGTERM, 143) and len(samples) < 2:
        sys.exit(f"the run stopped early (exit {proc.returncode}); see {log_path}")
    if len(samples) < 2:
        sys.exit(f"too few samples ({len(samples)}): run longer or sample more often")
    # Generation makes the tree's RSS swing by a gigabyte from step to step, so single samples mislead: compare
    # the median of the first quarter after warm-up with the median of the last quarter.
    after = [s for s in samples if s[0] >= args.warmup * args.minutes * 60] or samples
    quarter = max(1, len(after) // 4)
    early = statistics.median(s[1] for s in after[:quarter])
    late = statistics.median(s[1] for s in after[-quarter:])
    last = samples[-1]
    growth = 100.0 * (late - early) / early
    summary = {
        "minutes": round(last[0] / 60, 1),
        "steps": last[2],
        "samples_after_warmup": len(after),
        "rss_median_first_quarter_mib": round(early, 1),
        "rss_median_last_quarter_mib": round(late, 1),
        "rss_min_max_after_warmup_mib": [round(min(s[1] for s in after), 1), round(max(s[1] for s in after), 1)],
        "growth_after_warmup_pct": round(growth, 2),
        "log": str(log_path),
    }
    print(json.dumps(summary, indent=2))
    print(f"RSS growth after warm-up: {growth:+.2f}% over {summary['minutes']} min, {last[2]} steps "
          f"(target < 5%)")


if __name__ == "__main__":
    main()
