"""Shared fixtures: the embedded tiny model (built once per session) and small jsonl datasets."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def trl_log_prob_head_as_shipped():
    """Building a geo-r trainer switches TRL's log-prob head to completion-only scoring for the whole process (as a
    training process wants); each test starts from TRL as it ships."""
    yield
    if "trl.trainer.utils" in sys.modules:  # nothing to undo (nor to import) in tests that never loaded TRL
        from open_r1.compat import score_completion_tokens_only

        score_completion_tokens_only(False)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny Qwen2.5-VL in the repo cache (built on first use, reused afterwards)."""
    from open_r1.tiny_model import build_tiny_model

    return build_tiny_model(REPO / ".cache" / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def demo_data() -> tuple[Path, Path, Path]:
    """(train.jsonl, test.jsonl, images folder) of the shipped demo set."""
    root = REPO / "data" / "demo"
    return root / "train.jsonl", root / "test.jsonl", root / "images"


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def make_images(folder: Path, names: list[str], size=(64, 48)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (40 * i % 255, 100, 200)).save(folder / name)


def geo_row(row_id, images, lat=48.85, lon=2.35, **extra) -> dict:
    images = images if isinstance(images, list) else [images]
    row = {
        "id": row_id,
        "image": images[0] if len(images) == 1 else images,
        "conversations": [
            {"from": "human", "value": "<image>" * len(images) + "Where is this?"},
            {"from": "gpt", "value": f"Latitude: {lat}\nLongitude: {lon}"},
        ],
        "lat": lat,
        "lon": lon,
    }
    row.update(extra)
    return row


def write_demo_run(folder: Path, rows_file: Path, images: Path, max_rows: int = 24) -> Path:
    """An evaluation run over the demo test rows as `eval_geo` writes it (predictions.jsonl, metrics.json), with
    answers written by hand: three sampled guesses per photo at growing distances, every sixth photo unanswered."""
    from open_r1.data import load_rows
    from open_r1.evaluation.metrics import compute_metrics
    from open_r1.evaluation.records import build_records

    rows = load_rows(str(rows_file), str(images))
    rows = rows[::max(1, len(rows) // max_rows)][:max_rows]  # spread over the set's cities
    completions = []
    for i, row in enumerate(rows):
        shift = (0.01, 0.3, 2.0, 9.0, 30.0, None)[i % 6]
        if shift is None:
            completions.append(["I cannot tell."] * 3)
            continue
        completions.append([f"<think>Guess {k}: the light, the signs.</think><answer>Latitude: {row.lat + shift + k:.4f}\n"
                            f"Longitude: {row.lon - shift:.4f}</answer>" for k in (0.0, 0.05, 4.0)])
    records = build_records(rows, completions)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics = {"model": "demo-model", "benchmark": "demo"} | compute_metrics(records)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return folder


@pytest.fixture(scope="session")
def demo_eval_run(tmp_path_factory, demo_data) -> Path:
    """A finished demo evaluation run (hand-written answers, no model needed)."""
    _, test, images = demo_data
    return write_demo_run(tmp_path_factory.mktemp("demo-eval") / "run", test, images)
