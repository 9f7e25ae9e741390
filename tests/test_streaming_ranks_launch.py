"""Two CPU processes under the real launcher, one GRPO step on the tiny model with --streaming: each rank decodes
only its share of the stream's images (counted by a sitecustomize that wraps `load_image` per rank)."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

COUNTER = textwrap.dedent("""
    import os
    if os.environ.get("GEO_R_DECODE_LOG") and os.environ.get("LOCAL_RANK") is not None:
        import open_r1.data.images as images
        real = images.load_image
        def load_image(source, *args, **kwargs):
            path = os.path.join(os.environ["GEO_R_DECODE_LOG"], "rank%s" % os.environ.get("RANK", "0"))
            with open(path, "a") as log:
                log.write("%s\\n" % kwargs.get("where", "?"))  # the row: file:line
            return real(source, *args, **kwargs)
        images.load_image = load_image
""")


def test_each_rank_decodes_its_share_of_a_streamed_run(tmp_path, tiny_model_dir):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(COUNTER)
    (tmp_path / "decodes").mkdir()
    env = dict(os.environ, OUTPUT_DIR=str(tmp_path / "run"), REPORT_TO="none", CUDA_VISIBLE_DEVICES="",
               GEO_R_DECODE_LOG=str(tmp_path / "decodes"),
               PYTHONPATH=os.pathsep.join(p for p in [str(tmp_path / "site"), os.environ.get("PYTHONPATH")] if p))
    env.pop("MODEL", None)
    steps, per_device, generations = 2, 4, 4
    result = subprocess.run(
        ["bash", "run_scripts/run_grpo_rec.sh", "--streaming", "true", "--max_steps", str(steps),
         "--per_device_train_batch_size", str(per_device), "--num_generations", str(generations),
         "--max_completion_length", "8", "--save_steps", "100", "--logging_steps", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "start-up check:" in log
    decodes = {rank: (tmp_path / "decodes" / f"rank{rank}").read_text().splitlines() for rank in range(2)}
    rows = {rank: set(wheres) for rank, wheres in decodes.items()}
    # 2 ranks x 4 completions = 8 a step = 2 prompts, one per rank; the dataloader reads one generation ahead,
    # so the stream yields at most (steps + 1) * 2 rows, every rank reading all of them (the shuffle buffer holds
    # raw lines, never decoded images)
    rows_read = (steps + 1) * 2 * per_device // generations
    print({rank: f"{len(rows[rank])} rows, {len(decodes[rank])} images decoded" for rank in rows},
          f"of at most {rows_read} rows read by each rank")
    assert all(":" in where for wheres in rows.values() for where in wheres), decodes
    for rank in rows:
        assert 1 <= len(rows[rank]) <= rows_read // 2, (rank, decodes[rank])
        assert all(decodes[rank].count(where) <= 4 for where in rows[rank])  # each row once (up to 4 views)
    assert not rows[0] & rows[1]  # no row decoded twice: each prompt's group lives on one rank here
