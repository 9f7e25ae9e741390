"""Loading jsonl + image folders: the happy paths and every located error."""

from __future__ import annotations

import os
import re

import pytest

from conftest import geo_row, make_images, write_jsonl
from open_r1.data import DataError, load_rows
from open_r1.data.dataset import rows_to_dataset, split_for_validation, with_images


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder, ["a.jpg", "b.jpg", "sub/n.jpg", "sub/e.jpg", "sub/s.jpg", "sub/w.jpg"])
    return folder


def test_loads_single_and_multi_image_rows(tmp_path, images):
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [geo_row(1, "a.jpg", country="FR", city="Paris"), geo_row(2, ["sub/n.jpg", "sub/e.jpg", "sub/s.jpg", "sub/w.jpg"])],
    )
    rows = load_rows(str(data), str(images))
    assert [r.id for r in rows] == ["1", "2"]
    assert rows[0].image_paths == [str(images / "a.jpg")]
    assert len(rows[1].image_paths) == 4 and rows[1].image_paths[3].endswith("sub/w.jpg")
    assert rows[0].country == "FR" and rows[0].city == "Paris" and rows[0].region is None
    assert rows[0].question == "Where is this?"
    assert (rows[0].lat, rows[0].lon) == (48.85, 2.35)


def test_colon_separated_files_pair_with_folders_by_position(tmp_path):
    make_images(tmp_path / "A", ["x.jpg"])
    make_images(tmp_path / "B", ["y.jpg"])
    a = write_jsonl(tmp_path / "a.jsonl", [geo_row("a1", "x.jpg")])
    b = write_jsonl(tmp_path / "b.jsonl", [geo_row("b1", "y.jpg")])
    rows = load_rows(f"{a}:{b}", f"{tmp_path / 'A'}:{tmp_path / 'B'}")
    assert [r.image_paths[0] for r in rows] == [str(tmp_path / "A" / "x.jpg"), str(tmp_path / "B" / "y.jpg")]


def test_mismatched_list_counts(tmp_path, images):
    a = write_jsonl(tmp_path / "a.jsonl", [geo_row(1, "a.jpg")])
    b = write_jsonl(tmp_path / "b.jsonl", [geo_row(2, "b.jpg")])
    c = write_jsonl(tmp_path / "c.jsonl", [geo_row(3, "b.jpg")])
    with pytest.raises(DataError, match="lists 3 files but --image_folders lists 2 folders"):
        load_rows(f"{a}:{b}:{c}", f"{images}:{images}")


def test_missing_image_names_file_line_and_field(tmp_path, images):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "a.jpg"), geo_row(2, "nope.jpg")])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'image': 'nope.jpg' not found"):
        load_rows(str(data), str(images))


def test_bad_json_names_file_and_line(tmp_path, images):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "a.jpg"), "", '{"id": 2, "image": '])
    with pytest.raises(DataError, match=r"d\.jsonl:3: invalid JSON"):
        load_rows(str(data), str(images))


def test_wrong_number_of_image_tags(tmp_path, images):
    row = geo_row(1, ["a.jpg", "b.jpg"])
    row["conversations"][0]["value"] = "<image>Where?"
    data = write_jsonl(tmp_path / "d.jsonl", [row])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'conversations': .* 1 <image> tags but 'image' lists 2"):
        load_rows(str(data), str(images))


def test_row_without_labels_takes_coordinates_from_answer(tmp_path, images):
    row = geo_row(1, "a.jpg")
    del row["lat"], row["lon"]
    row["conversations"][1]["value"] = "<answer>Latitude: -33.87\nLongitude: 151.21</answer>"
    data = write_jsonl(tmp_path / "d.jsonl", [row])
    (loaded,) = load_rows(str(data), str(images))
    assert loaded.lat == pytest.approx(-33.87) and loaded.lon == pytest.approx(151.21)


def test_non_geo_row_loads_with_its_answer_as_solution(tmp_path, images):
    row = {"id": 1, "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>How many balls?"}, {"from": "gpt", "value": "3"}]}
    data = write_jsonl(tmp_path / "d.jsonl", [row])
    (loaded,) = load_rows(str(data), str(images))
    assert loaded.lat is None and loaded.solution == "3"


def test_out_of_range_and_half_given_coordinates(tmp_path, images):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "a.jpg", lat=95.0)])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'lat': 95.0 is outside"):
        load_rows(str(data), str(images))
    row = geo_row(1, "a.jpg")
    del row["lon"]
    data = write_jsonl(tmp_path / "e.jsonl", [row])
    with pytest.raises(DataError, match=r"e\.jsonl:1: field 'lon': missing"):
        load_rows(str(data), str(images))


def test_empty_file(tmp_path, images):
    data = write_jsonl(tmp_path / "d.jsonl", [])
    with pytest.raises(DataError, match=r"d\.jsonl: no rows"):
        load_rows(str(data), str(images))


def test_missing_folder_and_file(tmp_path, images):
    with pytest.raises(DataError, match="data file not found"):
        load_rows(str(tmp_path / "none.jsonl"), str(images))
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "a.jpg")])
    with pytest.raises(DataError, match="image folder not found"):
        load_rows(str(data), str(tmp_path / "nofolder"))


def test_dataset_decodes_images_lazily_and_keeps_row_pairing(tmp_path, images):
    rows = [geo_row(i, "a.jpg" if i % 2 else ["sub/n.jpg", "sub/e.jpg", "sub/s.jpg", "sub/w.jpg"]) for i in range(6)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    dataset = with_images(rows_to_dataset(load_rows(str(data), str(images))), max_pixels=28 * 28 * 4)
    batch = dataset[0:4]
    assert [len(imgs) for imgs in batch["images"]] == [4, 1, 4, 1]
    assert batch["images"][0][0].size[0] * batch["images"][0][0].size[1] <= 28 * 28 * 4
    assert batch["prompt"][0][0]["role"] == "user" and "<answer>" in batch["prompt"][0][0]["content"]
    train, held = split_for_validation(dataset, 0.34, seed=0)
    assert len(train) + len(held) == 6 and len(held) == 2


def test_corrupt_image_is_reported_at_decode(tmp_path, images):
    (images / "bad.jpg").write_bytes(b"not a jpeg")
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "bad.jpg")])
    dataset = with_images(rows_to_dataset(load_rows(str(data), str(images))), max_pixels=None)
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'image': cannot decode"):
        dataset[0]


def test_nan_none_and_empty_labels_are_missing_never_the_place_nan(tmp_path, images):
    rows = [
        '{"id": 1, "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>Where?"}, '
        '{"from": "gpt", "value": "Latitude: 1.0\\nLongitude: 2.0"}], "lat": 48.85, "lon": 2.35, '
        '"country": NaN, "region": "nan", "city": "None"}',  # NaN is what pandas' to_json/json.dumps write
        geo_row(2, "b.jpg", country="null", region="", city="<NA>"),
        geo_row(3, "a.jpg", country="NA", region="Khomas", city="Windhoek"),  # NA: Namibia, not a missing value
        {**geo_row(4, "a.jpg"), "id": float("nan")},
    ]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    loaded = load_rows(str(data), str(images))
    assert [(r.country, r.region, r.city) for r in loaded] == [
        (None, None, None), (None, None, None), ("NA", "Khomas", "Windhoek"), (None, None, None)
    ]
    assert loaded[3].id == f"{data}:4"  # a NaN id is no id: the row is named by its place


@pytest.mark.parametrize("image", ["../a.jpg", "sub/../../imgs/a.jpg", "../../etc/passwd", ["a.jpg", "../b.jpg"]])
def test_image_paths_that_climb_out_of_the_folder_are_refused(tmp_path, images, image):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, image)])
    bad = image[-1] if isinstance(image, list) else image
    with pytest.raises(DataError, match=rf"d\.jsonl:1: field 'image': '{re.escape(bad)}' climbs out of the image"):
        load_rows(str(data), str(images), check_images=False)


def test_a_path_that_stays_inside_the_folder_is_fine(tmp_path, images):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "sub/../a.jpg"), geo_row(2, "./b.jpg")])
    assert [r.image_paths for r in load_rows(str(data), str(images))] == [
        [os.path.join(images, "sub/../a.jpg")], [os.path.join(images, "./b.jpg")]
    ]


def test_absolute_image_paths_need_the_flag(tmp_path, images):
    absolute = str(images / "a.jpg")
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "b.jpg"), geo_row(2, absolute)])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'image': .* is an absolute path.*"
                                        r"--allow_absolute_image_paths"):
        load_rows(str(data), str(images))
    rows = load_rows(str(data), str(images), allow_absolute_image_paths=True)
    assert rows[1].image_paths == [absolute]
    from open_r1.configs import DataArguments

    assert DataArguments().allow_absolute_image_paths is False  # the training flag, off by default


@pytest.mark.parametrize(
    "value, message",
    [
        (True, r"field 'lat': expected a JSON number, got the boolean true \(write the coordinate in decimal"),
        ("48.85", r"field 'lat': expected a JSON number, got the string '48.85' \(write the number without quotes"),
        ("", r"field 'lat': expected a JSON number, got the string ''"),
        ([48.85], r"field 'lat': expected a JSON number, got list \[48.85\]"),
    ],
)
def test_coordinates_must_be_json_numbers(tmp_path, images, value, message):
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "a.jpg"), geo_row(2, "a.jpg", lat=value)])
    with pytest.raises(DataError, match=r"d\.jsonl:2: " + message):
        load_rows(str(data), str(images))
    data = write_jsonl(tmp_path / "e.jsonl", [geo_row(1, "a.jpg", lon=False)])
    with pytest.raises(DataError, match=r"e\.jsonl:1: field 'lon': expected a JSON number, got the boolean false"):
        load_rows(str(data), str(images))


def test_nan_coordinates_are_missing_and_come_from_the_answer(tmp_path, images):
    row = geo_row(1, "a.jpg", lat=float("nan"), lon=float("nan"))
    row["conversations"][1]["value"] = "<answer>Latitude: -33.87\nLongitude: 151.21</answer>"
    data = write_jsonl(tmp_path / "d.jsonl", [row])
    (loaded,) = load_rows(str(data), str(images))
    assert (loaded.lat, loaded.lon) == pytest.approx((-33.87, 151.21))
