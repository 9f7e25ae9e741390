"""`python -m open_r1.eval_geo` end to end on the tiny Qwen2.5-VL and the demo held-out split: the files it
writes, metrics that agree with its predictions, resuming after a kill, k guesses, LoRA adapters and
checkpoints."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from trl import TrlParser

from conftest import geo_row, make_images, write_jsonl
from open_r1 import eval_geo
from open_r1.configs import EvalArguments, ModelArguments, SamplingArguments
from open_r1.data import DataError, load_rows
from open_r1.evaluation import loading
from open_r1.evaluation.generation import TransformersGenerator
from open_r1.evaluation.harness import SettingsMismatch, evaluation_rows
from open_r1.evaluation.metrics import FAILURE_KM
from open_r1.evaluation.records import build_records
from open_r1.evaluation.store import read_predictions
from open_r1.geo import haversine_km, same_country, same_place

N_ROWS = 6
METRIC_KEYS = {"num_images", "num_guesses", "acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km",
               "mean_km", "median_km", "geoguessr", "country_acc", "region_acc", "city_acc", "parse_failure_rate",
               "failure_km", "model", "benchmark"}


def run_eval(model, output_dir, demo_data, *extra: str) -> dict:
    _, test, images = demo_data
    argv = ["--model_name_or_path", str(model), "--data_file_paths", str(test), "--image_folders", str(images),
            "--output_dir", str(output_dir), "--max_rows", str(N_ROWS), "--batch_size", "2",
            "--max_new_tokens", "6", "--max_pixels", "12544", *extra]
    return eval_geo.main(*TrlParser((EvalArguments, ModelArguments, SamplingArguments)).parse_args_and_config(argv))


@pytest.fixture()
def count_prompts(monkeypatch):
    """Number of prompts sent to the transformers generator, across calls."""
    counted = []
    original = TransformersGenerator.__call__

    def counting(self, conversations):
        counted.append(len(conversations))
        return original(self, conversations)

    monkeypatch.setattr(TransformersGenerator, "__call__", counting)
    return counted


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, demo_data):
    out = tmp_path_factory.mktemp("eval") / "run"
    metrics = run_eval(tiny_model_dir, out, demo_data)
    return out, metrics


def recompute(records: list[dict]) -> dict:
    """The metrics again, from the records' coordinates and labels alone."""
    errors, parsed, points = [], [], []
    for r in records:
        ok = r["pred_lat"] is not None
        km = float(haversine_km(r["pred_lat"], r["pred_lon"], r["true_lat"], r["true_lon"])) if ok else FAILURE_KM
        errors.append(km), parsed.append(ok), points.append(5000 * np.exp(-km / 1492.7) if ok else 0.0)
    errors, parsed = np.array(errors), np.array(parsed)
    out = {f"acc@{t}km": 100 * np.mean(parsed & (errors <= t)) for t in (1, 25, 200, 750, 2500)}
    out |= {"mean_km": errors.mean(), "median_km": np.median(errors), "geoguessr": np.mean(points),
            "parse_failure_rate": 100 * (1 - parsed.mean())}
    country = [ok and same_country(r["pred_place"]["country"], r["true_place"]["country"])
               for r, ok in zip(records, parsed)]
    region = [c and same_place(r["pred_place"]["region"], r["true_place"]["region"]) for r, c in zip(records, country)]
    city = [g and same_place(r["pred_place"]["city"], r["true_place"]["city"]) for r, g in zip(records, region)]
    out |= {"country_acc": 100 * np.mean(country), "region_acc": 100 * np.mean(region), "city_acc": 100 * np.mean(city)}
    return out


def test_writes_predictions_metrics_and_plots_that_agree(finished_run, demo_data, capsys):
    out, metrics = finished_run
    records, _ = read_predictions(out / "predictions.jsonl")
    rows = load_rows(str(demo_data[1]), str(demo_data[2]), max_rows=N_ROWS)
    assert [r["id"] for r in records] == [row.id for row in rows]
    for record, row in zip(records, rows):
        fields = {"completion", "parsed", "pred_lat", "pred_lon", "pred_names", "true_lat", "true_lon", "error_km"}
        assert fields <= set(record)
        assert (record["true_lat"], record["true_lon"]) == (row.lat, row.lon)
        assert record["images"] == row.image_paths
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics and METRIC_KEYS <= set(saved)
    assert saved["num_images"] == N_ROWS and saved["num_guesses"] == 1
    for key, value in recompute(records).items():
        assert saved[key] == pytest.approx(value), key
    for name in ("error_cdf.png", "world_map.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parseable_predictions_written_by_hand_are_scored_and_drawn(tmp_path, demo_data, monkeypatch):
    rows = load_rows(str(demo_data[1]), str(demo_data[2]), max_rows=N_ROWS)
    offsets = [0.0, 0.004, 0.1, 0.5, 3.0, None]  # degrees north of the truth; None: no answer
    completions = [[f"<think>...</think><answer>Latitude: {r.lat + d:.4f}\nLongitude: {r.lon:.4f}</answer>"
                    if d is not None else "I cannot tell."] for r, d in zip(rows, offsets)]
    out = tmp_path / "run"
    out.mkdir()
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in build_records(rows, completions)))
    monkeypatch.setattr(loading, "load_inference_model", lambda *a, **k: pytest.fail("nothing to generate"))
    metrics = run_eval("unused-model", out, demo_data)
    records, _ = read_predictions(out / "predictions.jsonl")
    assert metrics["parse_failure_rate"] == pytest.approx(100 / 6)
    assert 0 < metrics["acc@1km"] < metrics["acc@200km"] < 100 and metrics["country_acc"] > 50
    for key, value in recompute(records).items():
        assert metrics[key] == pytest.approx(value), key
    with Image.open(out / "world_map.png") as image:
        assert image.width >= 600

    # The same predictions rescored with OSV-5M's definitions: no generation, and metrics.json names the set.
    osv5m = run_eval("unused-model", out, demo_data, "--metrics", "osv5m", "--no_plots")
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metric_set"] == "osv5m" == osv5m["metric_set"] and metrics["metric_set"] == "geo_r"
    assert "subregion_acc" in saved and saved["parse_failure_rate"] == pytest.approx(100 / 6)


def test_a_killed_run_resumes_without_redoing_rows(finished_run, tmp_path, tiny_model_dir, demo_data, count_prompts):
    done, _ = finished_run
    out = tmp_path / "run"
    shutil.copytree(done, out)
    path = out / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    kept = "".join(lines[:2])
    path.write_text(kept + lines[2][: len(lines[2]) // 2])  # killed while writing the third record

    metrics = run_eval(tiny_model_dir, out, demo_data)
    assert sum(count_prompts) == N_ROWS - 2  # only the missing rows were generated
    text = path.read_text()
    assert text.startswith(kept)
    ids = [json.loads(line)["id"] for line in text.splitlines()]
    assert ids == [json.loads(line)["id"] for line in lines]  # every id once, in order
    assert metrics["num_images"] == N_ROWS

    count_prompts.clear()
    run_eval(tiny_model_dir, out, demo_data, "--no_plots")  # a finished run only rescores
    assert count_prompts == []


def test_resuming_with_other_settings_is_refused(finished_run, tmp_path, tiny_model_dir, demo_data):
    out = tmp_path / "run"
    shutil.copytree(finished_run[0], out)
    with pytest.raises(SettingsMismatch, match=r"max_new_tokens: 6 -> 9"):
        run_eval(tiny_model_dir, out, demo_data, "--max_new_tokens", "9")


def test_k_guesses_compare_and_submission(tmp_path, tiny_model_dir, demo_data, capsys):
    sub = tmp_path / "submission.csv"
    metrics = run_eval(tiny_model_dir, tmp_path / "k", demo_data, "--num_guesses", "3", "--temperature", "1.0",
                       "--max_rows", "2", "--benchmark", "yfcc4k", "--compare", "--submission", str(sub), "--no_plots")
    records, _ = read_predictions(tmp_path / "k" / "predictions.jsonl")
    assert len(records) == 2
    for record in records:
        assert sorted(g["sample"] for g in record["guesses"]) == [0, 1, 2]
        assert record["completion"] == record["guesses"][0]["completion"]
    assert metrics["num_guesses"] == 3 and "top5_weighted_score" in metrics and "best_of_k/acc@25km" in metrics
    assert not (tmp_path / "k" / "error_cdf.png").exists()
    printed = capsys.readouterr().out
    assert "yfcc4k" in printed and "GeoCLIP [1]" in printed and "9.59" in printed
    table = list(csv.reader(open(sub)))
    assert table[0] == ["id", "lat", "lon", "lat_1", "lon_1", "lat_2", "lon_2", "lat_3", "lon_3"]
    assert [row[0] for row in table[1:]] == [r["id"] for r in records]


def make_adapter(tiny_model_dir: Path, folder: Path, base_name: str | None = None) -> dict:
    """A LoRA adapter with non-zero weights on the tiny model; returns the merged weights peft computes."""
    from peft import LoraConfig, get_peft_model
    from trl import ModelConfig

    from open_r1.modeling.loading import load_model

    model = load_model(ModelConfig(model_name_or_path=str(tiny_model_dir)))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(folder)
    if base_name is not None:
        config = json.loads((folder / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = base_name
        (folder / "adapter_config.json").write_text(json.dumps(config))
    merged = peft_model.merge_and_unload()
    return {name: p.detach().clone() for name, p in merged.named_parameters() if name.endswith("q_proj.weight")}


def test_lora_adapters_load_merged_onto_the_base_they_name(tmp_path, tiny_model_dir):
    import torch

    adapter = tmp_path / "adapter"
    expected = make_adapter(tiny_model_dir, adapter)
    source = loading.resolve_model(str(adapter))
    assert source.adapter == str(adapter) and Path(source.weights) == Path(tiny_model_dir)
    assert Path(source.processor) == Path(tiny_model_dir)  # the adapter folder has no processor
    model = loading.load_inference_model(source)
    base = loading.load_inference_model(loading.resolve_model(str(tiny_model_dir)))
    loaded = dict(model.named_parameters())
    base_params = dict(base.named_parameters())
    assert expected and all(torch.equal(loaded[name], weight) for name, weight in expected.items())
    assert not any(torch.equal(base_params[name], weight) for name, weight in expected.items())


def test_an_adapter_whose_base_is_elsewhere_needs_and_takes_base_model(tmp_path, tiny_model_dir, demo_data):
    adapter = tmp_path / "adapter"
    make_adapter(tiny_model_dir, adapter, base_name="/nowhere/Qwen2.5-VL-3B-Instruct")
    message = r"adapter_config.json: field 'base_model_name_or_path'.*--base_model"
    with pytest.raises(loading.ModelLoadError, match=message):
        loading.resolve_model(str(adapter))
    metrics = run_eval(adapter, tmp_path / "eval", demo_data, "--base_model", str(tiny_model_dir), "--max_rows", "2",
                       "--no_plots")
    assert metrics["num_images"] == 2


def test_checkpoints_take_the_processor_from_their_run_folder(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    checkpoint = run / "checkpoint-7"
    checkpoint.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (checkpoint / name).symlink_to(tiny_model_dir / name)
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_model_dir / name, run / name)
    source = loading.resolve_model(str(checkpoint))
    assert source == loading.ModelSource(weights=str(checkpoint), adapter=None, processor=str(run))
    processor = loading.load_inference_processor(source, min_pixels=3136, max_pixels=12544)
    assert processor.tokenizer.padding_side == "left"

    shards = tmp_path / "zero3" / "checkpoint-9"
    (shards / "global_step9").mkdir(parents=True)
    shutil.copy(tiny_model_dir / "config.json", shards / "config.json")
    with pytest.raises(loading.ModelLoadError, match="zero_to_fp32"):
        loading.resolve_model(str(shards))


def test_rows_without_coordinates_or_with_repeated_ids_are_refused_with_their_line(tmp_path):
    make_images(tmp_path / "imgs", ["a.jpg"])
    no_coords = geo_row("a", "a.jpg")
    del no_coords["lat"], no_coords["lon"]
    no_coords["conversations"][1]["value"] = "A city somewhere."
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row("b", "a.jpg"), no_coords])
    args = EvalArguments(data_file_paths=str(data), image_folders=str(tmp_path / "imgs"))
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'lat'"):
        evaluation_rows(args, seed=0)
    write_jsonl(data, [geo_row("b", "a.jpg"), geo_row("b", "a.jpg")])
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'id': 'b' already used at .*d.jsonl:1"):
        evaluation_rows(args, seed=0)


def test_val_split_ratio_evaluates_the_rows_training_held_out(demo_data):
    from open_r1.data.dataset import rows_to_dataset, split_for_validation

    train, _, images = demo_data
    args = EvalArguments(data_file_paths=str(train), image_folders=str(images), val_split_ratio=0.1)
    rows = evaluation_rows(args, seed=42)
    _, held_out = split_for_validation(rows_to_dataset(load_rows(str(train), str(images))), 0.1, 42)
    assert sorted(r.id for r in rows) == sorted(held_out["id"])
    assert len(rows) == pytest.approx(0.1 * len(load_rows(str(train), str(images))), abs=1)
