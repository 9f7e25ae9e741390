"""The tools a model calls in an episode: `zoom` crops the original photo, `lookup` reads the offline
gazetteer; bad calls get a short error text, never an exception; the episode reader counts calls and reads the
final answer after the tool turns."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from open_r1.answer import TOOL_ERROR_PREFIX, read_episode
from open_r1.rewards import completion_text
from open_r1.tools import PhotoTools, build_toolset, crop_region, load_tool_module, lookup
from open_r1.tools.registry import TOOLS


def quadrant_photo(path, size=(400, 300)):
    """A photo whose four quadrants are red, green, blue and white, with a black 8x6 px dot at (300, 225)."""
    w, h = size
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[: h // 2, : w // 2] = (255, 0, 0)
    pixels[: h // 2, w // 2 :] = (0, 255, 0)
    pixels[h // 2 :, : w // 2] = (0, 0, 255)
    pixels[h // 2 :, w // 2 :] = (255, 255, 255)
    pixels[222:228, 296:304] = 0
    Image.fromarray(pixels).save(path)
    return str(path)


def test_zoom_returns_the_crop_of_the_original(tmp_path):
    tools = PhotoTools(max_pixels=200 * 150)
    tools.reset(image_paths=[quadrant_photo(tmp_path / "a.png")], id="x")
    out = tools.zoom(0.5, 0.0, 1.0, 0.5)  # the green quadrant
    assert isinstance(out, list) and out[0]["type"] == "image"
    crop = np.asarray(out[0]["image"])
    assert crop.shape[2] == 3 and (np.abs(crop.astype(int) - (0, 255, 0)).max(axis=2) < 8).mean() > 0.98
    assert "view 0" in out[1]["text"]


def test_zoom_shows_at_full_resolution_what_the_default_view_loses(tmp_path):
    """The 8x6 px dot is 2% of the width: a zoom on it returns it large, within the pixel budget."""
    tools = PhotoTools(max_pixels=112 * 112)
    tools.reset(image_paths=[quadrant_photo(tmp_path / "a.png")])
    crop = tools.zoom(0.7, 0.7, 0.8, 0.8)[0]["image"]  # 40x30 px of the original around the dot
    assert crop.width * crop.height <= 112 * 112
    dark = (np.asarray(crop).max(axis=2) < 60).mean()
    assert 0.02 < dark < 0.2  # the dot is a visible share of the crop


def test_zoom_scales_a_large_crop_down_within_max_pixels(tmp_path):
    tools = PhotoTools(max_pixels=50 * 50)
    tools.reset(image_paths=[quadrant_photo(tmp_path / "a.png")])
    crop = tools.zoom(0.0, 0.0, 1.0, 1.0)[0]["image"]
    assert crop.width * crop.height <= 50 * 50 * 1.05 and abs(crop.width / crop.height - 4 / 3) < 0.1


def test_zoom_picks_the_view_of_a_multi_view_row(tmp_path):
    first = quadrant_photo(tmp_path / "a.png")
    Image.new("RGB", (200, 200), (9, 99, 199)).save(tmp_path / "b.png")
    tools = PhotoTools()
    tools.reset(image_paths=[first, str(tmp_path / "b.png")])
    crop = np.asarray(tools.zoom(0.1, 0.1, 0.9, 0.9, view=1)[0]["image"])
    assert tuple(crop[5, 5]) == (9, 99, 199)


@pytest.mark.parametrize(
    "box, view, says",
    [
        ((0.6, 0.1, 0.2, 0.5), 0, "x2 > x1"),  # inverted
        ((0.1, 0.1, 0.1, 0.5), 0, "x2 > x1"),  # empty
        ((-0.2, 0.0, 0.5, 0.5), 0, "between 0 and 1"),
        ((0.0, 0.0, 1.5, 0.5), 0, "between 0 and 1"),
        ((0.0, "top", 0.5, 0.5), 0, "numbers"),
        ((0.0, float("nan"), 0.5, 0.5), 0, "between 0 and 1"),
        ((0.0, 0.0, 0.5, 0.5), 3, "view must be between 0 and 0"),
        ((0.0, 0.0, 0.5, 0.5), "left", "whole number"),
    ],
)
def test_bad_boxes_give_an_error_text_not_an_exception(tmp_path, box, view, says):
    tools = PhotoTools()
    tools.reset(image_paths=[quadrant_photo(tmp_path / "a.png")])
    out = tools.zoom(*box, view=view)
    assert isinstance(out, str) and out.startswith(TOOL_ERROR_PREFIX) and says in out


def test_zoom_without_a_photo_or_with_a_vanished_file_is_an_error_text(tmp_path):
    tools = PhotoTools()
    assert tools.zoom(0, 0, 1, 1).startswith(TOOL_ERROR_PREFIX)
    tools.reset(image_paths=[str(tmp_path / "gone.jpg")])
    assert "cannot be read" in tools.zoom(0, 0, 1, 1)


def test_crop_region_of_a_tiny_box_is_enlarged_to_the_vision_grid():
    image = Image.new("RGB", (1000, 1000), (1, 2, 3))
    crop = crop_region(image, 0.5, 0.5, 0.51, 0.52, max_pixels=401408)
    assert min(crop.size) >= 28


def test_lookup_finds_a_known_city_offline():
    text = lookup("Paris")
    first = text.splitlines()[0]
    assert first.startswith("Paris, Ile-de-France, France") and "48.8534" in first and "2.3488" in first
    assert "Texas" in lookup("Paris, United States") and "France" not in lookup("Paris, United States")
    assert lookup("Springfield, Illinois").splitlines() == [
        "Springfield, Illinois, United States: latitude 39.8017, longitude -89.6437"
    ]
    assert "Brazil" in lookup("sao paulo")  # accents and case do not matter


@pytest.mark.parametrize("place", ["Qwxzzyville", "", "   ", None])
def test_lookup_of_an_unknown_place_is_an_error_text(place):
    out = lookup(place)
    assert out.startswith(TOOL_ERROR_PREFIX)


def test_toolset_binds_the_same_tools_to_a_row_as_trl_does(tmp_path):
    toolset = build_toolset(["zoom", "lookup"], max_pixels=10000)
    assert [f.__name__ for f in toolset.functions] == ["lookup"]
    environment = toolset.environment_factory()
    assert isinstance(environment, PhotoTools) and environment.max_pixels == 10000
    bound = toolset.bind({"image_paths": [quadrant_photo(tmp_path / "a.png")]})
    assert sorted(bound) == ["lookup", "zoom"] and isinstance(bound["zoom"](0, 0, 0.5, 0.5), list)
    assert [t.__name__ for t in toolset.schemas()] == ["lookup", "zoom"]
    assert build_toolset(["lookup"]).environment_factory is None
    with pytest.raises(ValueError, match="unknown tool"):
        build_toolset(["zoom", "search"])


def test_tool_module_registers_a_users_tools(tmp_path):
    path = tmp_path / "my_tools.py"
    path.write_text(textwrap.dedent('''
        def elevation(lat: float, lon: float) -> str:
            """Height above sea level.

            Args:
                lat: latitude in degrees
                lon: longitude in degrees
            """
            return "12 m"

        def _helper():
            pass
    '''))
    try:
        assert load_tool_module(str(path)) == ["elevation"]
        assert build_toolset(["elevation"]).bind({})["elevation"](1.0, 2.0) == "12 m"
        bad = tmp_path / "bad_tools.py"
        bad.write_text("def nodoc(x):\n    return x\n")
        with pytest.raises(TypeError, match="type hints"):
            load_tool_module(str(bad))
    finally:
        TOOLS.pop("elevation", None)
        TOOLS.pop("nodoc", None)


def test_episode_answer_is_read_after_the_last_tool_turn():
    call = {"type": "function", "function": {"name": "zoom", "arguments": {"x1": 0, "y1": 0, "x2": 1, "y2": 1}}}
    episode = [
        {"role": "assistant", "content": "<think>Europe. <answer>Latitude: 1\nLongitude: 1</answer> check the sign",
         "tool_calls": [call]},
        {"role": "tool", "name": "zoom", "content": [{"type": "text", "text": "view 0"}]},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "name": "zoom", "content": f"{TOOL_ERROR_PREFIX} the box must have x2 > x1"},
        {"role": "assistant", "content": "it reads Lisbon</think>\n<answer>Latitude: 38.7\nLongitude: -9.1</answer>"},
    ]
    read = read_episode(episode)
    assert (read.calls, read.failed_calls, read.unparsed_calls, read.tools_used) == (2, 1, 0, ("zoom", "zoom"))
    assert "Latitude: 1\n" not in read.text and read.text.count("<answer>") == 1 and "it reads Lisbon" in read.text
    assert completion_text(episode) == read.text
    # no tools: the text is what it always was
    assert completion_text([{"role": "assistant", "content": "<answer>x</answer>"}]) == "<answer>x</answer>"
    # a call the parser could not read stays in the text and counts as invalid
    broken = read_episode([{"role": "assistant", "content": '<tool_call>{"name": "zoom", "arguments": {'}])
    assert broken.invalid_calls == 1 and broken.calls == 0
    assert read_episode([{"role": "tool", "content": "{'error': 'Tool search not found.'}"}]).failed_calls == 1
