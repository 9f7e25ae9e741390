"""The benches' record of finished runs (bench/recorded.py): what is recorded is read back by its key, a later
run of the same key wins, a smoke run is told apart, and a damaged line names its file and line."""

from __future__ import annotations

import pytest

from recorded import read_recorded, record, shortened_run


def test_recorded_runs_read_back_by_key_and_a_later_run_wins(tmp_path):
    path = tmp_path / "results" / "runs.jsonl"
    assert read_recorded(path, ("config", "seed")) == {}
    record(path, {"config": "baseline", "seed": 42, "acc@25km": 90.0})
    record(path, {"config": "baseline", "seed": 7, "acc@25km": 95.0})
    record(path, {"config": "baseline", "seed": 42, "acc@25km": 91.0})
    found = read_recorded(path, ("config", "seed"))
    assert set(found) == {("baseline", 42), ("baseline", 7)}
    assert found["baseline", 42]["acc@25km"] == 91.0 and "date" in found["baseline", 42]


def test_a_damaged_line_names_its_file_and_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"config": "baseline", "seed": 42}\n{"config": "dapo"\n')
    with pytest.raises(SystemExit, match=r"runs.jsonl:2"):
        read_recorded(path, ("config", "seed"))
    path.write_text('{"config": "baseline"}\n')
    with pytest.raises(SystemExit, match=r"runs.jsonl:1.*seed"):
        read_recorded(path, ("config", "seed"))


def test_a_shortened_run_is_told_apart(monkeypatch):
    monkeypatch.delenv("GRPO_STEPS", raising=False)
    monkeypatch.delenv("SFT_STEPS", raising=False)
    assert not shortened_run()
    monkeypatch.setenv("GRPO_STEPS", "2")
    assert shortened_run()
