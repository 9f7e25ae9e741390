"""The per-step console line of a GRPO run, and the full log kept beside it."""

from __future__ import annotations

import json
from types import SimpleNamespace

from open_r1.training.progress import ProgressLines, progress_line


def test_the_line_carries_the_figures_that_say_whether_a_run_learns():
    logs = {"reward": "1.2841", "geo/parse_rate": 0.96875, "geo/distance_km_median": 412.4,
            "geo/within_25km": 0.1875, "loss": "0.01"}
    line = progress_line(logs, step=12, max_steps=40, seconds_per_step=3.1)
    assert line == ("[geo-r] step 12/40  reward 1.284  parse 97%  median 412 km  <=25 km 19%  3.1 s/step  "
                    "ETA 1m27s")


def test_figures_the_log_lacks_are_left_out_not_shown_as_zero():
    line = progress_line({"reward": 0.5, "geo/distance_km_median": float("nan")}, 1, 100, None)
    assert line == "[geo-r] step   1/100  reward 0.500"
    assert progress_line({"loss": 2.5}, 3, 10, 2.0) == "[geo-r] step  3/10  loss 2.5000  2.0 s/step  ETA 14s"


def test_the_callback_prints_on_the_main_process_only_and_keeps_every_value(tmp_path, capsys):
    callback = ProgressLines()
    args = SimpleNamespace(output_dir=str(tmp_path))
    main = SimpleNamespace(global_step=0, max_steps=4, is_world_process_zero=True)
    callback.on_train_begin(args, main, None)
    main.global_step = 1
    callback.on_log(args, main, None, logs={"reward": 0.25, "kl": 0.001, "rewards/haversine/mean": 0.1})
    other = SimpleNamespace(global_step=1, max_steps=4, is_world_process_zero=False)
    callback.on_log(args, other, None, logs={"reward": 9.0})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("[geo-r] step 1/4  reward 0.250") and "ETA" in out[0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"step": 1, "reward": 0.25, "kl": 0.001, "rewards/haversine/mean": 0.1}]
