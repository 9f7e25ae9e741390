"""`python -m open_r1.predict`: one photo, four views of one place, a folder; the same prompt as evaluation."""

from __future__ import annotations

import json

import pytest
from trl import TrlParser

from conftest import make_images
from open_r1 import predict
from open_r1.configs import ModelArguments, PredictArguments, SamplingArguments
from open_r1.data import load_rows
from open_r1.data.dataset import prompt_messages
from open_r1.errors import ArgumentError
from open_r1.evaluation.describe import as_text, describe
from open_r1.evaluation.generation import geo_messages


def run_predict(model, *images: str, json_output: bool = True) -> list[dict]:
    argv = ["--model_name_or_path", str(model), "--images", *images, "--max_new_tokens", "6", "--max_pixels", "12544"]
    if json_output:
        argv.append("--json")
    return predict.main(*TrlParser((PredictArguments, ModelArguments, SamplingArguments)).parse_args_and_config(argv))


def test_the_prompt_is_the_one_evaluation_and_training_use(demo_data):
    train, test, images = demo_data
    for row in load_rows(str(test), str(images), max_rows=2) + load_rows(str(train), str(images), max_rows=4):
        assert geo_messages(row.question) == prompt_messages(row)


def test_one_photo_and_four_views_of_one_place(tiny_model_dir, demo_data, capsys):
    train, _, images = demo_data
    views = next(r for r in load_rows(str(train), str(images)) if len(r.image_paths) == 4).image_paths
    single = run_predict(tiny_model_dir, views[0])
    printed = json.loads(capsys.readouterr().out)
    assert printed == single and len(single) == 1 and single[0]["images"] == [views[0]]
    assert {"completion", "reasoning", "lat", "lon", "place", "summary"} <= set(single[0])
    together = run_predict(tiny_model_dir, *views, json_output=False)
    assert len(together) == 1 and together[0]["images"] == views
    text = capsys.readouterr().out
    assert " + ".join(views) in text and "Summary: " in text


def test_a_folder_is_predicted_photo_by_photo(tiny_model_dir, tmp_path, capsys):
    make_images(tmp_path / "photos", ["b.jpg", "a.png", "c.jpeg"])
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    predictions = run_predict(tiny_model_dir, str(tmp_path / "photos"))
    assert [p["images"] for p in predictions] == [[str(tmp_path / "photos" / n)] for n in ("a.png", "b.jpg", "c.jpeg")]
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_bad_image_arguments_say_what_is_wrong(tmp_path):
    make_images(tmp_path / "photos", ["a.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArgumentError, match="missing.jpg: image not found"):
        predict.image_groups([str(tmp_path / "photos" / "a.jpg"), str(tmp_path / "missing.jpg")])
    with pytest.raises(ArgumentError, match="a folder among several paths"):
        predict.image_groups([str(tmp_path / "photos"), str(tmp_path / "photos" / "a.jpg")])
    with pytest.raises(ArgumentError, match="no images"):
        predict.image_groups([str(tmp_path / "empty")])


def test_description_names_the_geocoded_place_in_words():
    completion = ("<think>Haussmann facades and a Metro sign: France, Ile-de-France, Paris.</think>\n"
                  "<answer>Country: France\nRegion: Ile-de-France\nCity: Paris\nLatitude: 48.8534\n"
                  "Longitude: 2.3488</answer>")
    result = describe(completion, ["p.jpg"])
    assert result["reasoning"].startswith("Haussmann facades")
    assert (result["lat"], result["lon"]) == (48.8534, 2.3488)
    assert result["place"]["city"] == "Paris" and result["place"]["country"] == "FR"
    assert result["place"]["country_name"] == "France" and result["place"]["distance_km"] < 1
    assert "48.8534° N, 2.3488° E" in result["summary"] and "Paris" in result["summary"]
    assert "http" not in result["summary"] and "www." not in result["summary"]
    text = as_text(result)
    assert "Place: Paris, Ile-de-France, France [FR]" in text and "Reasoning: Haussmann" in text

    southwest = describe("<answer>Latitude: -33.9249\nLongitude: -70.6693</answer>", ["s.jpg"])
    assert southwest["place"]["country"] == "CL" and "33.9249° S, 70.6693° W" in southwest["summary"]

    none = describe("It looks sunny.", ["x.jpg"])
    assert none["lat"] is None and none["place"] is None and "No coordinates" in none["summary"]
    assert "none could be parsed" in as_text(none) and "It looks sunny." in as_text(none)
