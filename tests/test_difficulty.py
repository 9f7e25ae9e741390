"""Row difficulty from k answers: the scores of a hand-computed case, the filters of the hard-sample training
file, and (slow) the command on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
from trl import TrlParser

from open_r1 import difficulty as difficulty_cli
from open_r1.answer import parse_answer, render_answer
from open_r1.configs import DifficultyArguments, ModelArguments, SamplingArguments
from open_r1.data.difficulty import Difficulty, hotspot_mask, keep_mask, score_guesses

PARIS = (48.8566, 2.3522)


def guess(text: str):
    answer = parse_answer(text)
    return (answer.lat, answer.lon) if answer else (None, None)


def km(a, b) -> float:
    """Great-circle distance written out (R = 6371.0088 km), independent of the code under test."""
    p1, p2, dl = math.radians(a[0]), math.radians(b[0]), math.radians(b[1] - a[1])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_scores_of_four_answers_equal_the_hand_computed_ones():
    near, lyon = (48.90, 2.35), (45.764, 4.8357)
    answers = [render_answer(*PARIS, "France", "Ile-de-France", "Paris"), render_answer(*near, "France", None, None),
               render_answer(*lyon, "France", None, "Lyon"), "I cannot tell where this is."]
    score = score_guesses([guess(a) for a in answers], *PARIS, threshold_km=25.0)
    assert km(PARIS, near) < 25 < km(PARIS, lyon)
    points = [5000.0, 5000 * math.exp(-km(PARIS, near) / 1492.7), 5000 * math.exp(-km(PARIS, lyon) / 1492.7), 0.0]
    assert score.pass_rate == 0.5 and score.difficulty == 0.5 and score.difficulty_k == 4
    assert score.mean_geoguessr == pytest.approx(sum(points) / 4, rel=1e-3)
    assert score.agreement == pytest.approx(1 / 6)  # of the 6 pairs only (Paris, near) are both parsed and close
    assert score_guesses([PARIS, PARIS], *PARIS).agreement == 1.0
    assert score_guesses([(None, None)], *PARIS).agreement == 0.0


def scored(pass_rate: float) -> Difficulty:
    return Difficulty(1 - pass_rate, pass_rate, 0.0, 0.0, 4, 25.0)


def test_filters_drop_the_right_rows():
    # A: solved at Paris; B: 10 km from A; C: Tokyo, half solved; D: Sydney, never solved
    scores = [scored(1.0), scored(0.25), scored(0.5), scored(0.0)]
    lats, lons = [48.8566, 48.90, 35.68, -33.87], [2.3522, 2.45, 139.69, 151.21]
    assert keep_mask(scores, lats, lons) == [True] * 4
    assert keep_mask(scores, lats, lons, drop_solved=True) == [False, True, True, True]
    assert keep_mask(scores, lats, lons, min_difficulty=0.6) == [False, True, False, True]
    assert keep_mask(scores, lats, lons, hotspot_km=25.0) == [False, False, True, True]
    assert keep_mask(scores, lats, lons, hotspot_km=5.0) == [False, True, True, True]
    assert hotspot_mask(lats, lons, [False] * 4, 1e4).tolist() == [False] * 4


@pytest.mark.slow
def test_the_command_scores_four_demo_rows_with_two_answers_each(tmp_path, tiny_model_dir, demo_data, caplog):
    train, _, images = demo_data
    out = tmp_path / "scored.jsonl"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--data_file_paths", str(train), "--image_folders",
            str(images), "--output_dir", str(tmp_path / "eval"), "--max_rows", "4", "--num_guesses", "2",
            "--batch_size", "2", "--max_new_tokens", "6", "--max_pixels", "12544", "--out", str(out)]
    written = difficulty_cli.main(*TrlParser((DifficultyArguments, ModelArguments, SamplingArguments))
                                  .parse_args_and_config(argv))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    originals = [json.loads(line) for line in train.read_text().splitlines()[:4]]
    assert written == 4 and [r["id"] for r in rows] == [o["id"] for o in originals]
    predictions = {}
    for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        predictions[record["id"]] = record
    # the untrained model's 6 tokens never give coordinates: the scores would call every row hard, and it says so
    assert "of the model's answers give coordinates" in caplog.text
    for row, original in zip(rows, originals):
        assert {k: row[k] for k in original} == original  # every input field kept
        guesses = predictions[row["id"]]["guesses"]
        assert row["difficulty_k"] == len(guesses) == 2
        passed = sum(g["parsed"] and g["error_km"] <= 25.0 for g in guesses) / 2
        assert row["pass_rate"] == passed and row["difficulty"] == 1 - passed
