"""The LLaMA-Factory export: sharegpt records with GRPO's prompts, one <image> tag per image, absolute paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import geo_row, make_images, write_jsonl
from open_r1.answer import build_question
from open_r1.data import load_rows
from open_r1.data.dataset import prompt_messages
from open_r1.data.sft_targets import chain_of_region_target
from open_r1.data.to_llamafactory import export


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_export_matches_grpo_prompts_and_chain_of_region_targets(tmp_path, demo_data):
    train, _, images = demo_data
    result = subprocess.run(
        [sys.executable, "-m", "open_r1.data.to_llamafactory", "--data_file_paths", str(train),
         "--image_folders", str(images), "--out", str(tmp_path / "lf")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = load_rows(str(train), str(images))
    records = read_jsonl(tmp_path / "lf" / "geo_r_sft.jsonl")
    assert len(records) == len(rows)
    for row, record in zip(rows, records):
        human, gpt = record["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        n = len(row.image_paths)
        assert human["value"].count("<image>") == n == len(record["images"])
        assert human["value"] == "<image>" * n + prompt_messages(row)[0]["content"]
        assert human["value"].endswith(build_question(row.question, is_geo=True))
        assert gpt["value"] == chain_of_region_target(row)
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in record["images"])
    assert any(len(r["images"]) == 4 for r in records)
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info == {
        "geo_r_sft": {
            "file_name": "geo_r_sft.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
        }
    }


def test_own_answers_custom_template_and_an_existing_dataset_info_is_kept(tmp_path):
    make_images(tmp_path / "imgs", ["a.jpg", "b.jpg"])
    rows = [geo_row(1, "a.jpg", lat=-1.28, lon=36.82), geo_row(2, ["a.jpg", "b.jpg"])]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "lf"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    rows = load_rows(str(data), str(tmp_path / "imgs"))
    export(rows, out, targets="answer", dataset_name="own", question_template="Q: {question}")
    records = read_jsonl(out / "own.jsonl")
    assert [r["conversations"][1]["value"] for r in records] == [r.solution for r in rows]
    assert records[1]["conversations"][0]["value"] == "<image><image>Q: Where is this?"
    assert records[1]["images"] == [str((tmp_path / "imgs" / n).resolve()) for n in ("a.jpg", "b.jpg")]
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"mine", "own"} and info["own"]["file_name"] == "own.jsonl"
