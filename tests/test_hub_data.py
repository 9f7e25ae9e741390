"""Rows straight from Hugging Face datasets (`--dataset_name`), in the layouts of the Hub (tests/hub_layouts.py):
the same rows as the jsonl path, columns guessed and printed, bad rows named by dataset, split, row and column,
a stream that resumes exactly (a reader killed with SIGKILL reads no row twice), and GRPO, eval and predict."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO
from hub_layouts import LAYOUTS, PLACES, osv5m_features, osv5m_table
from open_r1.configs import EvalArguments, GRPOScriptArguments, HubDatasetArguments
from open_r1.data import DataError
from open_r1.data.hub import HubRowStream, read_rows
from open_r1.errors import ArgumentError, InputError


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    return {name: make(root / name) for name, make in LAYOUTS.items()}


def hub_args(path, tmp_path, cls=GRPOScriptArguments, **flags):
    return cls(dataset_name=str(path), image_cache_dir=str(tmp_path / "cache"), **flags)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_reads_into_validated_rows_with_labels_and_decodable_images(layout, layouts, tmp_path, capsys):
    rows = read_rows(hub_args(layouts[layout], tmp_path))
    assert len(rows) == 8
    for i, row in enumerate(rows):
        lat, lon, country, region, city = PLACES[i % len(PLACES)]
        assert (row.lat, row.lon) == pytest.approx((lat, lon), abs=1e-4)
        assert row.source.endswith(f"split train, row {i}")
        assert f"Latitude: {lat:.4f}".rstrip("0") in row.solution
        for path in row.image_paths:
            with Image.open(path) as image:
                assert image.size == (64, 48)
    first = rows[0]
    if layout == "coordinates_parquet":
        assert len(first.image_paths) == 2 and first.id == "place-0" and first.country is None
    elif layout == "labelled_save_to_disk":
        assert first.country.upper() == "FR" and first.id == "0"  # a ClassLabel's name, not its number
    else:
        assert (first.country, first.region, first.city) == ("FR", "Île-de-France", "Paris")
        assert first.id in ("osv-0", "mp16_0")
    assert "[geo-r]" in capsys.readouterr().out  # the column guess is printed


def test_the_test_split_a_slice_and_explicit_columns(layouts, tmp_path, capsys):
    rows = read_rows(hub_args(layouts["osv5m_parquet"], tmp_path, EvalArguments))  # evaluation reads 'test'
    assert [row.id for row in rows] == [f"osv-{100 + i}" for i in range(4)]
    rows = read_rows(hub_args(layouts["labelled_save_to_disk"], tmp_path, dataset_split="test[1:3]"))
    assert [row.id for row in rows] == ["1", "2"] and rows[0].source.endswith("split test[1:3], row 1")
    capsys.readouterr()
    rows = read_rows(hub_args(layouts["mp16_imagefolder"], tmp_path, lat_column="LAT", lon_column="LON",
                              label_columns="country=country city=city", id_column="IMG_ID"))
    assert rows[0].region is None and rows[0].city == "Paris"
    assert "latitude 'LAT', longitude 'LON', country 'country', city 'city'" in capsys.readouterr().out


def test_wrong_flags_and_datasets_say_what_is_wrong(layouts, tmp_path):
    with pytest.raises(ArgumentError, match="--lat_column 'lat_deg': .* has no such column"):
        read_rows(hub_args(layouts["osv5m_parquet"], tmp_path, lat_column="lat_deg", lon_column="longitude"))
    with pytest.raises(ArgumentError, match="--label_columns 'town=city'"):
        read_rows(hub_args(layouts["osv5m_parquet"], tmp_path, label_columns="town=city"))
    with pytest.raises(InputError, match="--dataset_split validation: .* has the splits train, test"):
        read_rows(hub_args(layouts["labelled_save_to_disk"], tmp_path, dataset_split="validation"))
    with pytest.raises(InputError, match="--dataset_name .*nowhere.*cannot load it"):
        read_rows(hub_args(tmp_path / "nowhere", tmp_path))
    with pytest.raises(ArgumentError, match="--coordinates_column replaces"):
        HubDatasetArguments(dataset_name="x", coordinates_column="c", lat_column="a", lon_column="b")


def write_bad(tmp_path, change) -> Path:
    from datasets import Dataset

    table = osv5m_table(6)
    features = osv5m_features()
    features = change(table, features) or features
    folder = tmp_path / "bad"
    (folder / "data").mkdir(parents=True)
    Dataset.from_dict(table, features=features).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder


def missing_image(table, features):
    table["image"][4] = None


def string_latitude(table, features):
    from datasets import Value

    table["latitude"] = [str(v) for v in table["latitude"]]
    table["latitude"][3] = "48,85 N"
    features["latitude"] = Value("string")


def far_longitude(table, features):
    table["longitude"][2] = 200.0


@pytest.mark.parametrize(("change", "message"), [
    (missing_image, r"split train, row 4: column 'image': no image"),
    (string_latitude, r"split train, row 0: column 'latitude': expected a number, got the string '48.8"),
    (far_longitude, r"split train, row 2: column 'longitude': 200.0 is outside \[-180, 180\]"),
])
def test_bad_rows_are_refused_naming_dataset_split_row_and_column(change, message, tmp_path):
    folder = write_bad(tmp_path, change)
    with pytest.raises(DataError, match=rf"^dataset {folder}, {message}"):
        read_rows(hub_args(folder, tmp_path))


def stream_ids(args, **options) -> list[str]:
    return [row["id"] for row in HubRowStream(args, decode_images=False, epochs=1, **options)()]


def test_the_stream_reads_every_row_once_per_epoch_in_a_seeded_order_and_resumes_exactly(layouts, tmp_path):
    args = hub_args(layouts["osv5m_parquet"], tmp_path)
    first = stream_ids(args, seed=0, shuffle_buffer=4)
    assert sorted(first) == sorted(f"osv-{i}" for i in range(8)) and first == stream_ids(args, seed=0, shuffle_buffer=4)
    assert first != stream_ids(args, seed=1, shuffle_buffer=4)
    assert stream_ids(args, seed=0, shuffle_buffer=4, start_row=5) == first[5:]
    rows = list(HubRowStream(args, epochs=1, max_pixels=56 * 56, decode_only=lambda i: i % 2 == 0)())
    assert isinstance(rows[0]["images"][0], Image.Image) and rows[0]["prompt"][0]["role"] == "user"
    assert "another rank" in repr(rows[1]["images"][0])  # a row another rank decodes


READER = """
import sys, time
from open_r1.configs import GRPOScriptArguments
from open_r1.data.hub import HubRowStream
args = GRPOScriptArguments(dataset_name=sys.argv[1], image_cache_dir=sys.argv[2])
done = sum(1 for _ in open(sys.argv[3]))
with open(sys.argv[3], "a") as out:
    for row in HubRowStream(args, seed=3, shuffle_buffer=8, epochs=2, start_row=done, max_pixels=3136)():
        out.write(row["id"] + "\\n"); out.flush()
        time.sleep(float(sys.argv[4]))
"""


def test_a_stream_reader_killed_with_sigkill_resumes_without_reading_a_row_twice(tmp_path):
    from datasets import Dataset

    path = tmp_path / "big.parquet"
    Dataset.from_dict(osv5m_table(40), features=osv5m_features()).to_parquet(str(path))
    log = tmp_path / "read.txt"
    log.touch()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-c", READER, str(path), str(tmp_path / "cache"), str(log)]
    reader = subprocess.Popen([*command, "0.05"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while len(log.read_text().split()) < 25 and reader.poll() is None:
            time.sleep(0.05)
        reader.send_signal(signal.SIGKILL)
    finally:
        reader.wait()
    killed_at = len(log.read_text().split())
    assert 25 <= killed_at < 80, "the reader was not stopped in the middle"
    subprocess.run([*command, "0"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    read = log.read_text().split()
    expected = stream_ids(GRPOScriptArguments(dataset_name=str(path), image_cache_dir=str(tmp_path / "c2")), seed=3,
                          shuffle_buffer=8)
    assert len(read) == 80 and sorted(read[:40]) == sorted(read[40:]) == sorted(expected)
    assert read[:40] == expected  # the first epoch, across the kill, in the order of an unbroken read


# -- end to end on the tiny model (slow tier)


def grpo_run(tmp_path, tiny_model_dir, dataset, **script):
    from trl import GRPOConfig, ModelConfig

    from open_r1 import grpo_jsonl

    args = GRPOScriptArguments(dataset_name=str(dataset), image_cache_dir=str(tmp_path / "cache"),
                               max_pixels=112 * 112, reward_funcs=["format", "haversine"], **script)
    training = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
                          max_completion_length=8, max_steps=2, learning_rate=5e-3, logging_steps=1,
                          save_strategy="steps", save_steps=2, report_to=[], use_cpu=True, bf16=False, seed=0)
    grpo_jsonl.main(args, training, ModelConfig(model_name_or_path=str(tiny_model_dir)))
    return tmp_path / "out"


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_grpo_eval_and_predict_straight_from_each_layout(layout, layouts, tmp_path, tiny_model_dir, capsys):
    from trl import TrlParser

    from open_r1 import eval_geo, predict
    from open_r1.configs import ModelArguments, PredictArguments, SamplingArguments

    out = grpo_run(tmp_path, tiny_model_dir, layouts[layout])
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and [h["reward"] for h in state["log_history"] if "reward" in h]

    split = "train[:2]" if layout == "coordinates_parquet" else "test[:2]"  # a single file has one split
    common = ["--model_name_or_path", str(out), "--dataset_name", str(layouts[layout]), "--dataset_split", split,
              "--image_cache_dir", str(tmp_path / "cache"), "--max_new_tokens", "6", "--max_pixels", "12544"]
    metrics = eval_geo.main(*TrlParser((EvalArguments, ModelArguments, SamplingArguments)).parse_args_and_config(
        [*common, "--output_dir", str(tmp_path / "eval"), "--no_plots"]))
    assert metrics["num_images"] == 2
    assert "images" in capsys.readouterr().out  # the evaluation's progress line
    predictions = predict.main(*TrlParser((PredictArguments, ModelArguments, SamplingArguments)).parse_args_and_config(
        [*common, "--json"]))
    assert len(predictions) == 2 and all(p["images"] for p in predictions)


@pytest.mark.slow
def test_a_streamed_grpo_run_trains_and_resumes_past_the_rows_it_used(layouts, tmp_path, tiny_model_dir):
    out = grpo_run(tmp_path, tiny_model_dir, layouts["osv5m_parquet"], streaming=True)
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    from trl import GRPOConfig

    from open_r1.data.streaming import grpo_rows_consumed

    used = grpo_rows_consumed(2, GRPOConfig(output_dir=str(tmp_path / "x"), per_device_train_batch_size=4,
                                            num_generations=2, use_cpu=True, bf16=False))
    args = GRPOScriptArguments(dataset_name=str(layouts["osv5m_parquet"]), image_cache_dir=str(tmp_path / "cache"))
    whole = stream_ids(args, seed=0)
    assert stream_ids(args, seed=0, start_row=used) == whole[used:]


@pytest.mark.slow
def test_difficulty_scores_a_dataset_into_a_jsonl_file_training_reads(layouts, tmp_path, tiny_model_dir):
    from trl import TrlParser

    from open_r1 import difficulty
    from open_r1.configs import DifficultyArguments, ModelArguments, SamplingArguments
    from open_r1.data import load_rows

    out = tmp_path / "scored.jsonl"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(layouts["osv5m_parquet"]),
            "--dataset_split", "train[:3]", "--image_cache_dir", str(tmp_path / "cache"), "--output_dir",
            str(tmp_path / "eval"), "--num_guesses", "2", "--max_new_tokens", "6", "--max_pixels", "12544",
            "--out", str(out)]
    assert difficulty.main(*TrlParser((DifficultyArguments, ModelArguments, SamplingArguments))
                           .parse_args_and_config(argv)) == 3
    rows = load_rows(str(out), "/", allow_absolute_image_paths=True)
    assert [row.id for row in rows] == ["osv-0", "osv-1", "osv-2"] and rows[0].city == "Paris"
    assert all(json.loads(line)["difficulty_k"] == 2 for line in out.read_text().splitlines())


def test_the_llamafactory_export_reads_a_dataset(layouts, tmp_path):
    from open_r1.configs import ExportArguments
    from open_r1.data import to_llamafactory

    args = ExportArguments(dataset_name=str(layouts["coordinates_parquet"]), image_cache_dir=str(tmp_path / "cache"),
                           out=str(tmp_path / "lf"), export_name="views", targets="answer")
    path = to_llamafactory.main(args)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.name == "views.jsonl" and len(records) == 8
    assert len(records[0]["images"]) == 2 and all(Path(p).is_file() for p in records[0]["images"])
    assert "views" in json.loads((tmp_path / "lf" / "dataset_info.json").read_text())


def test_embedded_images_are_written_once_and_reused_by_the_next_read(layouts, tmp_path, capsys):
    args = hub_args(layouts["osv5m_parquet"], tmp_path)
    first = read_rows(args)
    assert "8 embedded images written" in capsys.readouterr().out
    stamps = [os.stat(p).st_mtime_ns for row in first for p in row.image_paths]
    again = read_rows(args)
    assert "embedded images written" not in capsys.readouterr().out
    assert [p for row in again for p in row.image_paths] == [p for row in first for p in row.image_paths]
    assert [os.stat(p).st_mtime_ns for row in again for p in row.image_paths] == stamps


@pytest.mark.slow
def test_sft_trains_from_a_dataset_and_prints_a_step_line_per_log(layouts, tmp_path, tiny_model_dir, capsys):
    from trl import ModelConfig, SFTConfig

    from open_r1 import sft
    from open_r1.configs import SFTScriptArguments

    args = SFTScriptArguments(dataset_name=str(layouts["mp16_imagefolder"]), max_pixels=112 * 112)
    training = SFTConfig(output_dir=str(tmp_path / "sft"), per_device_train_batch_size=4, max_steps=2,
                         logging_steps=1, max_length=None, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
                         gradient_checkpointing=False, seed=0)
    sft.main(args, training, ModelConfig(model_name_or_path=str(tiny_model_dir)))
    steps = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[geo-r] step ")]
    assert len(steps) == 2 and re.match(r"\[geo-r\] step 2/2  loss \d+\.\d{4}  \d+\.\d s/step  ETA 0s", steps[1])
    logged = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [log["step"] for log in logged if "loss" in log] == [1, 2]
