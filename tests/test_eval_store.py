"""predictions.jsonl: resume after a kill (cut-off last line), refuse real damage, write competition CSVs."""

from __future__ import annotations

import csv
import json

import pytest

from open_r1.evaluation.store import PredictionsError, PredictionStore, read_predictions
from open_r1.evaluation.submission import write_submission


def lines(*records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_a_cut_off_last_line_is_dropped_and_cut_from_the_file_before_appending(tmp_path):
    path = tmp_path / "predictions.jsonl"
    intact = lines({"id": "a"}, {"id": "b"})
    path.write_text(intact + '{"id": "c", "completion": "Lati')
    store = PredictionStore(path)
    assert store.done_ids == {"a", "b"}
    assert path.read_text() == intact
    store.append([{"id": "c"}])
    store.close()
    assert [r["id"] for r in read_predictions(path)[0]] == ["a", "b", "c"]
    assert path.read_text() == intact + lines({"id": "c"})


def test_a_complete_last_record_without_newline_is_kept_and_terminated(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(lines({"id": "a"}) + '{"id": "b"}')
    with PredictionStore(path) as store:
        assert store.done_ids == {"a", "b"}
        store.append([{"id": "c"}])
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]


def test_damage_before_the_last_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(lines({"id": "a"}) + "{not json\n" + lines({"id": "c"}))
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:2: invalid JSON"):
        PredictionStore(path)
    path.write_text(lines({"id": "a"}, {"completion": "x"}))
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:2: field 'id'"):
        read_predictions(path)


def test_repeated_ids_keep_their_first_record(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(lines({"id": "a", "v": 1}, {"id": "a", "v": 2}, {"id": "b"}))
    records, size = read_predictions(path)
    assert [(r["id"], r.get("v")) for r in records] == [("a", 1), ("b", None)]
    assert size == path.stat().st_size


def record(row_id, lat, lon, guesses=None):
    out = {"id": row_id, "pred_lat": lat, "pred_lon": lon}
    if guesses is not None:
        out["guesses"] = [{"lat": a, "lon": b} for a, b in guesses]
    return out


def test_submission_has_id_lat_lon_and_empty_cells_for_unparseable_answers(tmp_path):
    path = write_submission([record("a", 48.8534, 2.3488), record("b", None, None)], tmp_path / "sub.csv")
    rows = list(csv.reader(open(path)))
    assert rows == [["id", "lat", "lon"], ["a", "48.853400", "2.348800"], ["b", "", ""]]


def test_submission_with_k_guesses_adds_ranked_columns(tmp_path):
    records = [record("a", 1.0, 2.0, [(1.0, 2.0), (None, None), (5.0, 6.0)]),
               record("b", None, None, [(None, None)] * 3)]
    rows = list(csv.DictReader(open(write_submission(records, tmp_path / "sub.csv"))))
    assert list(rows[0]) == ["id", "lat", "lon", "lat_1", "lon_1", "lat_2", "lon_2", "lat_3", "lon_3"]
    first = (rows[0]["lat"], rows[0]["lat_1"], rows[0]["lat_2"], rows[0]["lon_3"])
    assert first == ("1.000000", "1.000000", "", "6.000000")
    assert rows[1]["lat"] == "" and rows[1]["lat_3"] == ""
