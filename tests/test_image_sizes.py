"""The image size the model sees is qwen_vl_utils' `smart_resize` of the photo's size, whichever path decoded it:
`load_image` (which drafts and reduces large photos) then Qwen2-VL's processor, over 50 photo sizes and both
shipped pixel budgets, JPEG (drafted) and PNG, upright and EXIF-rotated."""

from __future__ import annotations

import random

import pytest
from PIL import Image
from qwen_vl_utils import smart_resize

from open_r1.data.images import fitted_size, load_image
from open_r1.data.rows import DataError
from open_r1.modeling.loading import load_processor

MIN_PIXELS = 3136
BUDGETS = (12544, 401408)  # data_config/demo.yaml, data_config/geo_r_3b.yaml


def photo_sizes(count: int = 50) -> list[tuple[int, int]]:
    """(width, height): camera and phone shapes, panoramas and strips up to 1:6, small to 12 megapixels."""
    rng = random.Random(0)
    sizes = [(4000, 3000), (3024, 4032), (1024, 768), (28, 28), (100, 56), (6000, 1000)]
    while len(sizes) < count:
        ratio = rng.choice((4 / 3, 3 / 4, 16 / 9, 9 / 16, 1.0, 3.0, 1 / 6)) * rng.uniform(0.95, 1.05)
        area = 10 ** rng.uniform(3.5, 7.1)
        width = max(20, round((area * ratio) ** 0.5))
        sizes.append((width, max(20, round(width / ratio))))
    return sizes


@pytest.fixture(scope="module")
def processors(tiny_model_dir):
    return {budget: load_processor(str(tiny_model_dir), min_pixels=MIN_PIXELS, max_pixels=budget)
            for budget in BUDGETS}


def seen_size(processor, image: Image.Image) -> tuple[int, int]:
    """(height, width) in pixels of the patches the processor makes of `image`."""
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
    patch = processor.image_processor.patch_size
    return grid[1] * patch, grid[2] * patch


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_processor_sees_smart_resize_of_the_photo_size(tmp_path, processors, budget):
    sizes = photo_sizes()
    assert len(set(sizes)) == 50
    drafted = 0
    for k, (width, height) in enumerate(sizes):
        suffix = ".png" if k % 5 == 4 else ".jpg"
        path = tmp_path / f"{k}{suffix}"
        Image.new("RGB", (width, height), (k * 5 % 255, 90, 160)).save(path)
        image = load_image(str(path), budget, where=f"row {k}")
        drafted += suffix == ".jpg" and width * height > 4 * budget
        expected = smart_resize(height, width, factor=28, min_pixels=MIN_PIXELS, max_pixels=budget)
        assert seen_size(processors[budget], image) == expected, (width, height, image.size)
    assert drafted >= 10  # the reduced decode is part of what is compared


def test_an_exif_rotated_photo_is_sized_upright(tmp_path, processors):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (4032, 3024), (10, 20, 30)).save(path, exif=exif)
    image = load_image(str(path), 401408)
    assert image.height > image.width
    assert seen_size(processors[401408], image) == smart_resize(4032, 3024, factor=28, min_pixels=MIN_PIXELS,
                                                                max_pixels=401408)


def test_a_reduced_image_is_already_on_the_processor_grid(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000)).save(path)
    image = load_image(str(path), 401408)
    assert image.size == fitted_size(4000, 3000, 401408)
    assert image.width % 28 == 0 and image.height % 28 == 0 and image.width * image.height <= 401408


def test_a_strip_beyond_the_processors_aspect_limit_is_a_data_error(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (8000, 30)).save(path)
    with pytest.raises(DataError, match=r"row 7: field 'image': .*strip.png: .*aspect ratio"):
        load_image(str(path), 12544, where="row 7")
