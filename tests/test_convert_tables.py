"""Table converters (osv5m, im2gps3k, yfcc4k, csv): rows written, images found, names filled, swaps caught."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import make_images
from open_r1.answer import DEFAULT_GEO_QUESTION, render_answer
from open_r1.data import DataError, load_rows
from open_r1.data.convert.__main__ import main as convert_main
from open_r1.data.convert.csv_table import ImageFinder
from open_r1.data.validate import validate
from open_r1.geo import reverse_geocode


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


OSV_HEADER = [
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "region", "sub-region", "city"
]


@pytest.fixture()
def osv(tmp_path):
    """An OSV-5M-like table: images in the 00/ and 01/ sub-folders its zips unpack to, one image missing."""
    images = tmp_path / "images" / "train"
    make_images(images, ["00/1001.jpg", "00/1002.jpg", "01/1003.jpg"])
    table = write_csv(
        tmp_path / "train.csv",
        OSV_HEADER,
        [
            [1001, 38.7223, -9.1393, "http://x/1", "PT", "s1", "Lisbon", "Lisboa", "Lisbon"],
            [1002, 48.8566, 2.3522, "http://x/2", "FR", "s2", "", "", ""],  # names left to the geocoder
            [1003, -33.9249, 18.4241, "http://x/3", "ZA", "s3", "Western Cape", "", "Cape Town"],
            [1004, 35.6895, 139.6917, "http://x/4", "JP", "s4", "Tokyo", "", "Tokyo"],  # no image on disk
        ],
    )
    return table, images


def test_osv5m_finds_images_in_subfolders_keeps_labels_and_fills_gaps(tmp_path, osv, capsys):
    table, images = osv
    out = tmp_path / "out" / "osv.jsonl"
    assert convert_main(["osv5m", "--csv", str(table), "--images", str(images), "--out", str(out), "--quiet"]) == 0

    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["1001", "1002", "1003"]
    assert [r["image"] for r in rows] == ["00/1001.jpg", "00/1002.jpg", "01/1003.jpg"]
    lisbon, paris, cape_town = rows
    assert (lisbon["country"], lisbon["region"], lisbon["city"]) == ("PT", "Lisbon", "Lisbon")
    assert (lisbon["lat"], lisbon["lon"]) == (38.7223, -9.1393)
    nearest = reverse_geocode([48.8566], [2.3522])[0]
    assert (paris["country"], paris["region"], paris["city"]) == ("FR", nearest.region, nearest.city)
    assert paris["city"]  # the geocoder does know central Paris
    assert cape_town["city"] == "Cape Town" and cape_town["region"] == "Western Cape"

    human, gpt = lisbon["conversations"]
    assert human == {"from": "human", "value": "<image>" + DEFAULT_GEO_QUESTION}
    assert gpt == {"from": "gpt", "value": render_answer(38.7223, -9.1393, "PT", "Lisbon", "Lisbon")}

    printed = capsys.readouterr().out
    assert "wrote 3 rows" in printed
    assert "skipped 1 rows" in printed and "1 whose image is not in the image folder" in printed
    assert f"{table}:5" in printed  # the skipped row is named by file and line

    loaded = load_rows(str(out), str(images))
    assert [r.id for r in loaded] == ["1001", "1002", "1003"]
    assert loaded[2].image_paths == [str(images / "01" / "1003.jpg")]
    assert validate(str(out), str(images)).ok


IM2GPS_HEADER = ["IMG_ID", "AUTHOR", "LON", "LAT", "S3_Label"]  # as distributed: the names are swapped


@pytest.fixture()
def im2gps(tmp_path):
    images = tmp_path / "im2gps3ktest"
    names = ["1000_bermuda@N00.jpg", "1001_auckland@N00.jpg", "1002_paris@N00.jpg"]
    make_images(images, names)
    # "LON" holds the latitudes and "LAT" the longitudes, as in im2gps3k_places365.csv; the first row is
    # plausible either way, so only the second gives the swap away.
    table = write_csv(
        tmp_path / "im2gps3k_places365.csv",
        IM2GPS_HEADER,
        [
            [names[0], "a@N00", 32.325436, -64.764404, 2],
            [names[1], "b@N00", -36.843876, 174.7654, 1],
            [names[2], "c@N00", 48.858842, 2.329101, 2],
        ],
    )
    return table, images


def test_im2gps3k_swapped_columns_stop_the_run_and_name_the_fix(tmp_path, im2gps, capsys):
    table, images = im2gps
    out = tmp_path / "im2gps3k.jsonl"
    assert convert_main(["im2gps3k", "--csv", str(table), "--images", str(images), "--out", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"{table}:3: field 'LAT': 174.7654 is not a latitude" in error
    assert "--swap_latlon" in error
    assert not out.exists() and not Path(f"{out}.partial").exists()  # nothing half-written is left behind


def test_im2gps3k_with_swap_latlon_writes_the_right_coordinates(tmp_path, im2gps):
    table, images = im2gps
    out = tmp_path / "im2gps3k.jsonl"
    args = ["im2gps3k", "--csv", str(table), "--images", str(images), "--out", str(out), "--swap_latlon", "--quiet"]
    assert convert_main(args) == 0
    rows = {r.id: r for r in load_rows(str(out), str(images))}
    auckland = rows["1001_auckland@N00.jpg"]
    assert (auckland.lat, auckland.lon) == (-36.843876, 174.7654)
    assert auckland.country == "NZ"
    assert (rows["1000_bermuda@N00.jpg"].lat, rows["1000_bermuda@N00.jpg"].lon) == (32.325436, -64.764404)
    assert validate(str(out), str(images)).ok


def test_swap_latlon_on_a_correct_file_is_refused(tmp_path):
    images = tmp_path / "imgs"
    make_images(images, ["a.jpg"])
    table = write_csv(tmp_path / "t.csv", ["IMG_ID", "LAT", "LON"], [["a.jpg", -36.84, 174.76]])
    with pytest.raises(DataError, match=r"t\.csv:2: field 'LON': 174\.76 is not a latitude .*without --swap_latlon"):
        from open_r1.data.convert.__main__ import build_parser, convert

        convert(build_parser().parse_args(
            ["im2gps3k", "--csv", str(table), "--images", str(images), "--out", str(tmp_path / "o.jsonl"),
             "--swap_latlon", "--quiet"]
        ))


def test_yfcc4k_adds_extensions_and_finds_moved_images(tmp_path, capsys):
    images = tmp_path / "yfcc4k"
    make_images(images, ["8888.jpg", "nested/9999.png"])
    table = write_csv(
        tmp_path / "yfcc4k_places365.csv",
        ["IMG_ID", "AUTHOR", "LAT", "LON"],
        [["8888", "x", 40.7128, -74.006], ["9999.jpg", "y", 51.5074, -0.1278], ["7777", "z", 41.9, 12.5]],
    )
    out = tmp_path / "yfcc4k.jsonl"
    assert convert_main(["yfcc4k", "--csv", str(table), "--images", str(images), "--out", str(out), "--quiet"]) == 0
    rows = read_jsonl(out)
    assert [(r["id"], r["image"]) for r in rows] == [("8888", "8888.jpg"), ("9999.jpg", "nested/9999.png")]
    assert rows[0]["country"] == "US" and rows[1]["country"] == "GB"
    assert "1 whose image is not in the image folder" in capsys.readouterr().out


def test_generic_csv_columns_by_flag_and_counted_skips(tmp_path, capsys):
    images = tmp_path / "photos"
    make_images(images, ["p/1.jpg", "p/2.jpg", "p/3.jpg", "p/4.jpg"])
    table = tmp_path / "meta.tsv"
    table.write_text(
        "file\tY\tX\tnation\tplace\n"
        "p/1.jpg\t-22.9068\t-43.1729\tBrazil\tRio de Janeiro\n"
        "p/2.jpg\tn/a\t10.0\tFrance\t\n"
        "p/3.jpg\t95.5\t200.0\t\t\n"
        "p/4.jpg\t-33.8688\t151.2093\tAustralia\tSydney\n",
        encoding="utf-8",
    )
    out = tmp_path / "mine.jsonl"
    args = ["csv", "--csv", str(table), "--images", str(images), "--out", str(out), "--delimiter", "\t",
            "--image_col", "file", "--lat_col", "Y", "--lon_col", "X", "--country_col", "nation",
            "--city_col", "place", "--quiet"]
    assert convert_main(args) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["p/1.jpg", "p/4.jpg"]
    assert (rows[0]["country"], rows[0]["city"]) == ("BR", "Rio de Janeiro")  # names become ISO codes
    assert (rows[1]["country"], rows[1]["city"]) == ("AU", "Sydney")
    printed = capsys.readouterr().out
    assert "skipped 2 rows" in printed
    assert f"1 with missing or non-numeric coordinates (e.g. {table}:3)" in printed
    assert f"1 with coordinates out of range (e.g. {table}:4)" in printed


def test_a_column_named_by_flag_must_exist(tmp_path, capsys):
    images = tmp_path / "imgs"
    make_images(images, ["a.jpg"])
    table = write_csv(tmp_path / "t.csv", ["image", "lat", "lon"], [["a.jpg", 1.0, 2.0]])
    args = ["csv", "--csv", str(table), "--images", str(images), "--out", str(tmp_path / "o.jsonl"),
            "--city_col", "town", "--quiet"]
    assert convert_main(args) == 2
    assert "t.csv:1: field 'town': no such column" in capsys.readouterr().err


def test_no_fill_names_and_max_rows(tmp_path, osv):
    table, images = osv
    out = tmp_path / "osv.jsonl"
    args = ["osv5m", "--csv", str(table), "--images", str(images), "--out", str(out), "--no_fill_names",
            "--max_rows", "2", "--quiet"]
    assert convert_main(args) == 0
    rows = read_jsonl(out)
    assert len(rows) == 2
    assert (rows[1]["country"], rows[1]["region"], rows[1]["city"]) == ("FR", None, None)


def test_sft_targets_write_a_region_chain(tmp_path, osv):
    table, images = osv
    out = tmp_path / "osv_sft.jsonl"
    args = ["osv5m", "--csv", str(table), "--images", str(images), "--out", str(out), "--sft_targets", "--quiet"]
    assert convert_main(args) == 0
    from open_r1.answer import parse_answer, split_completion

    for row in read_jsonl(out):
        think, answer = split_completion(row["conversations"][1]["value"])
        assert think and answer
        parsed = parse_answer(row["conversations"][1]["value"])
        assert (parsed.lat, parsed.lon) == pytest.approx((row["lat"], row["lon"]), abs=1e-4)
    assert load_rows(str(out), str(images))


def test_image_finder_reports_ambiguous_names(tmp_path):
    make_images(tmp_path, ["a/5.jpg", "b/5.jpg", "c/6.jpg"])
    finder = ImageFinder(str(tmp_path), by_name=True)
    assert finder.find("6") == "c/6.jpg"
    assert "several files" in finder.find("5").reason
    assert "not in the image folder" in finder.find("7").reason
