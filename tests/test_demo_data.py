"""The shipped demo set: what `data/demo/generate.py` writes, a GRPO split the SFT warm start never sees, and the
generated dev split recipes are chosen on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
LAUNCHER_PROCESSES = 2  # run_grpo_rec.sh on a CPU


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def images(row: dict) -> list[str]:
    return [row["image"]] if isinstance(row["image"], str) else list(row["image"])


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("demo")
    module.generate(out, dev=True)
    return out


def test_the_shipped_demo_is_what_the_generator_writes(regenerated):
    for split in ("train", "test", "grpo"):
        assert (regenerated / f"{split}.jsonl").read_bytes() == (DEMO / f"{split}.jsonl").read_bytes(), split
    written = sorted(p.relative_to(regenerated / "images") for p in (regenerated / "images").rglob("*.jpg")
                     if "-dev-" not in p.name)
    shipped = sorted(p.relative_to(DEMO / "images") for p in (DEMO / "images").rglob("*.jpg"))
    assert written == shipped
    for rel in written[::50]:
        assert (regenerated / "images" / rel).read_bytes() == (DEMO / "images" / rel).read_bytes(), rel


def test_grpo_photos_are_new_to_the_warm_start_and_cover_every_city():
    train, test, grpo = (rows(DEMO / f"{split}.jsonl") for split in ("train", "test", "grpo"))
    seen = {name for row in train + test for name in images(row)}
    assert not seen & {name for row in grpo for name in images(row)}
    assert not {(r["lat"], r["lon"]) for r in train + test} & {(r["lat"], r["lon"]) for r in grpo}
    assert {r["city"] for r in grpo} == {r["city"] for r in train} and len({r["city"] for r in grpo}) == 64
    assert {len(images(r)) for r in grpo} == {1, 4}  # batches mix image counts, as in training
    assert all((DEMO / "images" / name).is_file() for row in grpo for name in images(row))


def test_each_quarter_of_the_demo_grpo_run_is_one_pass_over_its_photos():
    """The reward curve's quarters compare the same photos, so a rise is the policy's and not the draw's."""
    recipe = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())
    assert recipe["data_file_paths"] == "data/demo/grpo.jsonl"
    assert recipe["gradient_accumulation_steps"] == 1  # one generation batch per step
    prompts_per_step = recipe["per_device_train_batch_size"] * LAUNCHER_PROCESSES // recipe["num_generations"]
    steps_per_pass, left = divmod(len(rows(DEMO / "grpo.jsonl")), prompts_per_step)
    assert left == 0 and recipe["max_steps"] == 4 * steps_per_pass


def test_the_dev_split_is_a_second_held_out_set_of_new_photos(regenerated):
    """Recipes are chosen on dev (bench/learning.py --dev), so it must be like test and share nothing with it."""
    dev, test = rows(regenerated / "dev.jsonl"), rows(DEMO / "test.jsonl")
    others = test + rows(DEMO / "train.jsonl") + rows(DEMO / "grpo.jsonl")
    assert len(dev) == len(test)
    assert sorted(r["city"] for r in dev) == sorted(r["city"] for r in test)
    assert not {n for r in dev for n in images(r)} & {n for r in others for n in images(r)}
    assert not {(r["lat"], r["lon"]) for r in dev} & {(r["lat"], r["lon"]) for r in others}
    assert all((regenerated / "images" / n).is_file() for r in dev for n in images(r))
    assert not (DEMO / "dev.jsonl").exists()  # generated for tuning, never shipped
