"""validate: every problem at once (located by file, line and field), coverage, countries, exit codes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import geo_row, make_images, write_jsonl
from open_r1.data import DataError, load_rows
from open_r1.data.validate import main as validate_main
from open_r1.data.validate import validate


def test_clean_data_matches_what_the_loader_reads(demo_data):
    train, test, images = demo_data
    report = validate(f"{train}:{test}", str(images))
    rows = load_rows(f"{train}:{test}", str(images))
    assert report.ok and report.errors == 0
    assert report.rows == report.valid_rows == len(rows)
    assert report.images == sum(len(r.image_paths) for r in rows)
    assert report.countries == Counter(r.country for r in rows)
    assert report.labels["city"] == sum(r.city is not None for r in rows)
    assert report.geo_rows == len(rows)


@pytest.fixture()
def broken(tmp_path):
    """Two files with one problem of each kind, on known lines."""
    images = tmp_path / "imgs"
    make_images(images, ["a.jpg", "b.jpg", "c.jpg", "n.jpg", "e.jpg"])
    (images / "empty.jpg").write_bytes(b"")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg body" * 4)
    first = write_jsonl(tmp_path / "first.jsonl", [
        geo_row("r1", "a.jpg", country="FR"),                       # 1 clean
        '{"id": "r2", "image": ',                                    # 2 invalid JSON
        geo_row("r3", "missing.jpg"),                                # 3 missing image
        geo_row("r4", "b.jpg", lat=95.0, lon=10.0),                  # 4 latitude out of range
        {**geo_row("r5", ["n.jpg", "e.jpg"]),                        # 5 one <image> tag for two images
         "conversations": [{"from": "human", "value": "<image>Where?"}, {"from": "gpt", "value": ""}]},
        geo_row("r6", "empty.jpg"),                                  # 6 empty image file
        "",                                                          # 7 blank: ignored
        geo_row("r8", "corrupt.jpg", country="FR"),                  # 8 unreadable only when decoded
        geo_row("r9", "c.jpg", country="DE", city="Berlin"),         # 9 clean
    ])
    second = write_jsonl(tmp_path / "second.jsonl", [
        geo_row("r1", "c.jpg", country="DE"),                        # 1 duplicate of first.jsonl:1
        {"id": "r11", "image": "a.jpg"},                             # 2 no conversations
    ])
    return first, second, images


def test_collects_every_problem_with_file_line_and_field(broken):
    first, second, images = broken
    with pytest.raises(DataError, match=r"first\.jsonl:2: invalid JSON"):
        load_rows(f"{first}:{second}", str(images))  # the loader stops at the first problem

    report = validate(f"{first}:{second}", str(images))
    assert not report.ok
    assert report.problems == Counter(
        json=1, missing_image=1, coordinates=1, image_tags=1, unreadable_image=1, duplicate_id=1, format=1
    )
    assert report.rows == 10 and report.valid_rows == 4
    messages = {kind: shown[0] for kind, shown in report.messages.items()}
    assert messages["json"].startswith(f"{first}:2: invalid JSON")
    assert messages["missing_image"].startswith(f"{first}:3: field 'image': 'missing.jpg' not found")
    assert messages["coordinates"].startswith(f"{first}:4: field 'lat': 95.0 is outside")
    assert messages["image_tags"].startswith(f"{first}:5: field 'conversations': the human turn has 1 <image> tags")
    assert messages["unreadable_image"] == f"{first}:6: field 'image': 'empty.jpg' is an empty file"
    assert messages["duplicate_id"] == f"{second}:1: field 'id': the same id as {first}:1"
    assert messages["format"].startswith(f"{second}:2: field 'conversations'")
    assert report.countries == Counter({"FR": 2, "DE": 2})  # r8 (corrupt, not decoded) counts as clean


def test_decode_images_finds_corrupt_files(broken):
    first, second, images = broken
    report = validate(f"{first}:{second}", str(images), decode_images=True)
    assert report.problems["unreadable_image"] == 2
    assert any(m.startswith(f"{first}:8: field 'image': cannot decode") for m in report.messages["unreadable_image"])


def test_problems_are_all_counted_but_listing_is_capped(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(i, f"gone{i}.jpg") for i in range(30)])
    report = validate(str(data), str(images), max_messages=5)
    assert report.problems["missing_image"] == 30
    assert len(report.messages["missing_image"]) == 5
    assert "... and 25 more" in report.format()


def test_cli_summary_and_exit_codes(broken, demo_data, capsys):
    first, second, images = broken
    assert validate_main(["--data_file_paths", f"{first}:{second}", "--image_folders", str(images)]) == 1
    printed = capsys.readouterr().out
    assert "7 problems (4 of 10 rows are clean)" in printed
    assert "1 duplicate ids" in printed and f"{second}:1: field 'id'" in printed
    assert "label coverage: coordinates 100.0%, country 100.0%, region 0.0%, city 25.0%" in printed

    train, _, demo_images = demo_data
    args = ["--data_file_paths", str(train), "--image_folders", str(demo_images), "--top_countries", "3"]
    assert validate_main(args) == 0
    printed = capsys.readouterr().out
    countries = {json.loads(line)["country"] for line in train.read_text().splitlines()}
    assert "no problems found" in printed and f"countries: {len(countries)} distinct" in printed

    assert validate_main(["--data_file_paths", str(first), "--image_folders", str(images / "nope")]) == 2
    assert "image folder not found" in capsys.readouterr().err


def test_raise_for_errors_carries_the_report(broken):
    first, _, images = broken
    with pytest.raises(DataError, match=r"missing images[\s\S]*first\.jsonl:3"):
        validate(str(first), str(images)).raise_for_errors()


def test_nan_labels_are_missing_not_names_and_are_counted(tmp_path, capsys):
    images = tmp_path / "imgs"
    make_images(images, ["a.jpg", "b.jpg"])
    data = write_jsonl(tmp_path / "d.jsonl", [
        geo_row("r1", "a.jpg", country="nan", region="None", city="Paris"),
        '{"id": "r2", "image": "b.jpg", "conversations": [{"from": "human", "value": "<image>Where?"}, '
        '{"from": "gpt", "value": ""}], "lat": 1.0, "lon": 2.0, "country": NaN, "city": null}',
        geo_row("r3", "b.jpg", country="FR"),
    ])
    report = validate(str(data), str(images))
    assert report.ok  # a missing label is no error
    assert report.countries == Counter({"FR": 1})  # never a country called "nan"
    assert (report.labels["country"], report.labels["region"], report.labels["city"]) == (1, 0, 1)
    assert report.placeholders == 3 and report.first_placeholder == f"{data}:1: field 'country': \"nan\""
    assert validate_main(["--data_file_paths", str(data), "--image_folders", str(images)]) == 0
    printed = capsys.readouterr().out
    assert "3 labels are NaN/None/null placeholders and count as missing, not as place names" in printed
    assert "nan" not in printed.split("countries:")[1].lower()


def test_strict_rows_image_paths_and_coordinate_types(tmp_path, capsys):
    images = tmp_path / "imgs"
    make_images(images, ["a.jpg"])
    make_images(tmp_path, ["outside.jpg"])
    data = write_jsonl(tmp_path / "d.jsonl", [
        geo_row("r1", "a.jpg"),
        geo_row("r2", "../outside.jpg"),                  # climbs out of the folder
        geo_row("r3", str(images / "a.jpg")),             # absolute
        geo_row("r4", "a.jpg", lat="48.85"),              # a string
        geo_row("r5", "a.jpg", lon=True),                 # a boolean
    ])
    report = validate(str(data), str(images))
    assert report.problems == Counter(format=2, coordinates=2) and report.valid_rows == 1
    messages = report.messages["format"] + report.messages["coordinates"]
    assert messages[0].startswith(f"{data}:2: field 'image': '../outside.jpg' climbs out of the image folder")
    assert messages[1].startswith(f"{data}:3: field 'image': '{images / 'a.jpg'}' is an absolute path")
    assert messages[2].startswith(f"{data}:4: field 'lat': expected a JSON number, got the string '48.85'")
    assert messages[3].startswith(f"{data}:5: field 'lon': expected a JSON number, got the boolean true")
    assert report.images == 3  # refused paths are not looked up outside the folder

    args = ["--data_file_paths", str(data), "--image_folders", str(images), "--allow_absolute_image_paths"]
    assert validate_main(args) == 1
    printed = capsys.readouterr().out
    assert "3 problems (2 of 5 rows are clean)" in printed and "climbs out" in printed
    assert validate(str(data), str(images), allow_absolute_image_paths=True).problems == Counter(
        format=1, coordinates=2
    )
