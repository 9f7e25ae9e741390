"""The zoom variant of the demo: a sign that is one grey square at the training size and spells the city in a zoom."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from open_r1.data.images import load_image
from open_r1.tools.zoom import PhotoTools

REPO = Path(__file__).resolve().parent.parent
DEMO_MAX_PIXELS = 12544  # data_config/demo.yaml


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("demo_generate", REPO / "data" / "demo" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_code(crop: np.ndarray, x: int, y: int, generator) -> tuple[int, ...]:
    """Each stripe's colour axis: the axis along which its pixels stray most from the sign's mean colour."""
    code = []
    for stripe in range(3):
        top = y + 16 * stripe
        deviations = crop[top + 2:top + 14, x + 2:x + generator.SIGN_SIDE - 2].reshape(-1, 3) - generator.SIGN_MEAN
        strays = [np.abs(deviations @ (np.array(a) / np.linalg.norm(a))).mean() if any(a) else 10.0
                  for a in generator.SIGN_AXES]
        code.append(int(np.argmax(strays)))
    return tuple(code)


def test_every_sign_is_the_same_grey_at_the_training_size_and_spells_its_city_in_a_zoom(tmp_path, generator):
    box = generator.CLUE_BOX
    left, top = round(box[0] * generator.ZOOM_SIZE), round(box[1] * generator.ZOOM_SIZE)
    small_views, read = [], []
    for index in range(64):
        image, (x, y) = generator.render_zoom(index, np.random.default_rng([index, 0]))
        path = tmp_path / f"{index}.jpg"
        generator.save_zoom_photo(image, path)
        small = np.asarray(load_image(str(path), DEMO_MAX_PIXELS), dtype=np.float32)
        assert small.shape == (112, 112, 3)
        small_views.append(small[y // 4:(y + generator.SIGN_SIDE) // 4, x // 4:(x + generator.SIGN_SIDE) // 4])
        tools = PhotoTools(max_pixels=DEMO_MAX_PIXELS)
        tools.reset(image_paths=[str(path)])
        crop = tools.zoom(*box)[0]["image"]
        assert crop.size == (112, 112)  # the clue box at full resolution, not resized
        read.append(read_code(np.asarray(crop, dtype=np.float32), x - left, y - top, generator))
    # at the training size the sign tells nothing: every one is the sign's mean grey, within JPEG rounding
    assert max(float(np.abs(view - generator.SIGN_MEAN).max()) for view in small_views) <= 2.0
    # after a zoom the checks spell each city's code, and the 64 codes are 64 different cities
    assert read == [generator.sign_code(i) for i in range(64)]
    assert len(set(read)) == 64


def test_the_zoom_variant_writes_single_photo_rows_with_their_clue_box(tmp_path, generator):
    generator.generate(tmp_path, train_per_city=1, test_per_city=1, zoom=True)
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == 64
        assert {len(r["conversations"]) for r in rows} == {2}
        assert all(r["clue_box"] == generator.CLUE_BOX and isinstance(r["image"], str) for r in rows)
        assert all(load_image(str(tmp_path / "images" / r["image"])).size == (448, 448) for r in rows[:4])
    assert len({r["city"] for r in rows}) == 64
