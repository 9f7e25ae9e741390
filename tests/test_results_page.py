"""docs/results.md is what bench/results/*.jsonl give: a recorded figure and the page cannot disagree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_results_page_is_the_recorded_figures():
    run = subprocess.run([sys.executable, "bench/results_page.py", "--check"], cwd=REPO, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr + run.stdout
