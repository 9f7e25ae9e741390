"""Peak resident memory per rank, as bench/rehearse.py reads it from /proc: a torchrun worker is named by its
rank, another python process by its pid, and the peak survives the memory being freed before the process ends."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from open_r1.training.peak_memory import run_measured

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")

ALLOCATE = textwrap.dedent("""
    import time
    block = bytearray(300 * 1024 * 1024)  # touched, so resident
    time.sleep(1.0)
    del block
    time.sleep(0.5)
""")


def test_the_peak_of_a_freed_allocation_is_kept(tmp_path):
    rc, seconds, peak = run_measured([sys.executable, "-c", ALLOCATE], log=tmp_path / "log", interval=0.1)
    assert rc == 0 and seconds >= 1.5
    (name, value), = peak.ranks().items()
    assert name.startswith("pid")
    assert value >= 300 * 1024 * 1024


def test_torchrun_workers_are_named_by_rank(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(ALLOCATE)
    launcher = textwrap.dedent(f"""
        import os, subprocess, sys
        procs = [subprocess.Popen([sys.executable, {str(script)!r}],
                                  env=dict(os.environ, TORCHELASTIC_RUN_ID="x", RANK=str(r), LOCAL_RANK=str(r)))
                 for r in (0, 1)]
        sys.exit(max(p.wait() for p in procs))
    """)
    rc, _, peak = run_measured([sys.executable, "-c", launcher], log=tmp_path / "log", interval=0.1)
    assert rc == 0
    ranks = peak.ranks()
    assert sorted(ranks) == ["rank0", "rank1"]  # the launcher itself is left out once workers are found
    assert all(value >= 300 * 1024 * 1024 for value in ranks.values())
