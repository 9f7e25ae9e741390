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


# The header of im2gps3k_places365.csv as TIBHannover/GeoEstimation published it until 2020-02-17 (its commit
# 5e091c0 fixed it): "LON", "LAT" over latitude, longitude values. Today's file says "LAT", "LON".
OLD_IM2GPS_HEADER = [
    "IMG_ID", "AUTHOR", "LON", "LAT", "S3_Label", "S16_Label", "S365_Label", "Prob_indoor", "Prob_natural",
    "Prob_urban",
]
FIXED_IM2GPS_HEADER = ["IMG_ID", "AUTHOR", "LAT", "LON", *OLD_IM2GPS_HEADER[4:]]
# Real rows of the file (true latitude, longitude); none has a value beyond +-90, so only the header and
# where the places lie can tell the order.
IM2GPS_ROWS = [
    ("1000269685_e60e9cdfb4_1125_78841376@N00.jpg", "78841376@N00", 32.325436, -64.764404),  # Bermuda
    ("1008804117_ce4e6fef8a_1349_97522422@N00.jpg", "97522422@N00", 46.478536, 30.758714),  # Odesa
    ("101220879_0a1be45b79_33_24311489@N00.jpg", "24311489@N00", 42.249915, -87.82711),  # Illinois
    ("1014898753_ef4cfaa5d6_1354_96928198@N00.jpg", "96928198@N00", 62.140088, 6.074967),  # Norway
    ("1019846234_5e471a10e2_1155_97522422@N00.jpg", "97522422@N00", 42.197494, 44.693069),  # Georgia
    ("1023756068_20c3ffc329_1039_70323761@N00.jpg", "70323761@N00", 40.807694, -73.962262),  # New York
    ("103442236_09c8d53dbc_37_73293249@N00.jpg", "73293249@N00", 51.501821, -0.140655),  # London
    ("1058450330_29b27f18cc_1304_52057668@N00.jpg", "52057668@N00", 48.858842, 2.329101),  # Paris
]
AUCKLAND = ("104138228_eac9608bce_34_19355699@N00.jpg", "19355699@N00", -36.843876, 174.7654)
SCENE = [2, 12, 353, 0.274, 0.045, 0.681]


def im2gps_table(tmp_path, header, rows, name="im2gps3k_places365.csv"):
    """The table (values always latitude, longitude, whatever the header says) and its image folder."""
    images = tmp_path / "im2gps3ktest"
    make_images(images, [row[0] for row in rows])
    header = [*header, *OLD_IM2GPS_HEADER[4:]][: 4 + len(SCENE)]  # the scene columns, when not named
    table = write_csv(tmp_path / name, header, [[*row, *SCENE] for row in rows])
    return table, images


def convert_args(fmt, table, images, out, *flags):
    return [fmt, "--csv", str(table), "--images", str(images), "--out", str(out), "--quiet", *flags]


def test_the_old_im2gps3k_header_is_recognised_whichever_rows_are_written(tmp_path, capsys):
    table, images = im2gps_table(tmp_path, OLD_IM2GPS_HEADER, IM2GPS_ROWS)
    out = tmp_path / "im2gps3k.jsonl"
    assert convert_main(convert_args("im2gps3k", table, images, out, "--max_rows", "3")) == 0
    rows = read_jsonl(out)
    assert [(r["lat"], r["lon"]) for r in rows] == [row[2:] for row in IM2GPS_ROWS[:3]]
    assert [r["country"] for r in rows] == ["BM", "UA", "US"]
    printed = capsys.readouterr().out
    assert "'LON' holds the latitudes and 'LAT' the longitudes" in printed
    assert "published until 2020-02-17" in printed and "--no_swap_latlon overrides" in printed
    assert validate(str(out), str(images)).ok


def test_todays_im2gps3k_header_is_read_as_named(tmp_path, capsys):
    table, images = im2gps_table(tmp_path, FIXED_IM2GPS_HEADER, [*IM2GPS_ROWS, AUCKLAND])
    out = tmp_path / "im2gps3k.jsonl"
    assert convert_main(convert_args("im2gps3k", table, images, out)) == 0
    rows = {r.id: r for r in load_rows(str(out), str(images))}
    auckland = rows[AUCKLAND[0]]
    assert (auckland.lat, auckland.lon, auckland.country) == (-36.843876, 174.7654, "NZ")
    assert (rows[IM2GPS_ROWS[7][0]].lat, rows[IM2GPS_ROWS[7][0]].lon) == (48.858842, 2.329101)
    assert "'LAT' holds the latitudes and 'LON' the longitudes" in capsys.readouterr().out


def test_swapped_columns_of_an_unknown_table_are_found_from_where_the_places_lie(tmp_path, capsys):
    # a table of one region, no value beyond +-90, and a header that names the columns the wrong way round
    table, images = im2gps_table(tmp_path, ["photo", "by", "longitude", "latitude"], IM2GPS_ROWS, "mine.csv")
    out = tmp_path / "mine.jsonl"
    args = convert_args("csv", table, images, out, "--image_col", "photo", "--lat_col", "latitude",
                        "--lon_col", "longitude", "--max_rows", "2")
    assert convert_main(args) == 0
    assert [(r["lat"], r["lon"]) for r in read_jsonl(out)] == [row[2:] for row in IM2GPS_ROWS[:2]]
    printed = capsys.readouterr().out
    assert "'longitude' holds the latitudes and 'latitude' the longitudes" in printed
    assert "8 distinct sampled places" in printed and "swapping them" in printed

    # named the right way round, the same values are read as they are
    table, images = im2gps_table(tmp_path, ["photo", "by", "latitude", "longitude"], IM2GPS_ROWS, "right.csv")
    args = convert_args("csv", table, images, out, "--image_col", "photo", "--lat_col", "latitude",
                        "--lon_col", "longitude")
    assert convert_main(args) == 0
    assert [(r["lat"], r["lon"]) for r in read_jsonl(out)] == [row[2:] for row in IM2GPS_ROWS]


# Yerevan, Tbilisi and Baku: swapped, each lands near a town in southern Russia, so the values cannot tell
CAUCASUS = [("yerevan.jpg", "a", 40.1792, 44.4991), ("tbilisi.jpg", "b", 41.7151, 44.8271),
            ("baku.jpg", "c", 40.4093, 49.8671)]


def test_an_unclear_order_stops_and_asks_for_a_flag(tmp_path, capsys):
    table, images = im2gps_table(tmp_path, ["image", "author", "lat", "lon"], CAUCASUS, "caucasus.csv")
    out = tmp_path / "caucasus.jsonl"
    assert convert_main(convert_args("csv", table, images, out)) == 2
    error = capsys.readouterr().err
    assert f"{table}:1: field 'lat': cannot tell whether the columns 'lat', 'lon' hold latitude" in error
    assert "3 distinct sampled places" in error
    assert "--no_swap_latlon if 'lat' holds the latitudes, or --swap_latlon if 'lon' does" in error
    assert not out.exists()
    assert convert_main(convert_args("csv", table, images, out, "--no_swap_latlon")) == 0
    assert [(r["lat"], r["lon"]) for r in read_jsonl(out)] == [row[2:] for row in CAUCASUS]
    assert convert_main(convert_args("csv", table, images, out, "--swap_latlon")) == 0  # the user's word
    assert [(r["lat"], r["lon"]) for r in read_jsonl(out)] == [row[2:][::-1] for row in CAUCASUS]


def test_a_country_column_makes_a_small_table_clear(tmp_path, capsys):
    images = tmp_path / "imgs"
    make_images(images, [row[0] for row in CAUCASUS])
    countries = ["Armenia", "GE", "Azerbaijan"]
    table = write_csv(tmp_path / "caucasus.csv", ["image", "lat", "lon", "country"],
                      [[row[0], *row[2:], country] for row, country in zip(CAUCASUS, countries)])
    out = tmp_path / "caucasus.jsonl"
    assert convert_main(convert_args("csv", table, images, out)) == 0
    assert "3 of them checked against the country column" in capsys.readouterr().out
    assert [(r["lat"], r["lon"], r["country"]) for r in read_jsonl(out)] == [
        (40.1792, 44.4991, "AM"), (41.7151, 44.8271, "GE"), (40.4093, 49.8671, "AZ")
    ]


def test_an_explicit_flag_is_checked_against_every_sampled_row_not_only_those_written(tmp_path, capsys):
    table, images = im2gps_table(tmp_path, OLD_IM2GPS_HEADER, [*IM2GPS_ROWS, AUCKLAND])
    out = tmp_path / "im2gps3k.jsonl"
    args = convert_args("im2gps3k", table, images, out, "--no_swap_latlon", "--max_rows", "2")
    assert convert_main(args) == 2
    error = capsys.readouterr().err
    assert f"{table}:10: field 'LAT': 174.7654 is not a latitude (|lat| > 90) with --no_swap_latlon" in error
    assert "run again with --swap_latlon" in error
    assert not out.exists() and not Path(f"{out}.partial").exists()  # nothing half-written is left behind
    with pytest.raises(SystemExit):  # one or the other
        convert_main(convert_args("im2gps3k", table, images, out, "--swap_latlon", "--no_swap_latlon"))


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


def test_a_header_whose_values_say_the_other_order_stops_the_run(tmp_path, capsys):
    # the old file's header, but over longitude, latitude values (someone "fixed" the values instead)
    rows = [(image, author, lon, lat) for image, author, lat, lon in IM2GPS_ROWS]
    table, images = im2gps_table(tmp_path, OLD_IM2GPS_HEADER, rows)
    assert convert_main(convert_args("im2gps3k", table, images, tmp_path / "o.jsonl")) == 2
    error = capsys.readouterr().err
    assert "the file looks like the im2gps3k_places365.csv (or im2gps_places365.csv) published until" in error
    assert "but its values say the other order" in error and "--swap_latlon" in error


def test_rows_that_disagree_on_the_order_stop_the_run(tmp_path, capsys):
    table, images = im2gps_table(tmp_path, ["image", "author", "lat", "lon"],
                                 [AUCKLAND, ("x.jpg", "a", 174.7654, -36.843876)], "mixed.csv")
    assert convert_main(convert_args("csv", table, images, tmp_path / "o.jsonl")) == 2
    error = capsys.readouterr().err
    assert f"{table}:3: field 'lat': 174.7654 is not a latitude" in error
    assert f"{table}:2: field 'lon': 174.7654 is not one either" in error and "the rows of this file disagree" in error


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


@pytest.mark.parametrize("typed", ["\\t", "tab", "TAB", "\\x09", "\\u0009", "\t"])
def test_delimiter_takes_escapes_and_names_as_people_type_them(tmp_path, typed):
    images = tmp_path / "photos"
    make_images(images, ["1.jpg", "2.jpg"])
    table = tmp_path / "meta.tsv"
    table.write_text("file\tlat\tlon\n1.jpg\t-22.9068\t-43.1729\n2.jpg\t-33.8688\t151.2093\n", encoding="utf-8")
    out = tmp_path / "mine.jsonl"
    args = convert_args("csv", table, images, out, "--delimiter", typed, "--image_col", "file")
    assert convert_main(args) == 0
    assert [(r["lat"], r["lon"]) for r in read_jsonl(out)] == [(-22.9068, -43.1729), (-33.8688, 151.2093)]


@pytest.mark.parametrize("typed", ["\\t\\t", "ab", "", "\\n", "\\q"])
def test_a_delimiter_that_is_not_one_character_is_a_usage_error(tmp_path, typed, capsys):
    with pytest.raises(SystemExit) as stopped:
        convert_main(["csv", "--csv", "t.csv", "--images", ".", "--out", "o.jsonl", "--delimiter", typed])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--delimiter" in error and "Traceback" not in error
    assert "is not one field separator" in error or "is not a valid escape" in error


def test_nan_none_and_empty_cells_are_missing_labels_never_the_place_nan(tmp_path):
    images = tmp_path / "photos"
    make_images(images, ["paris.jpg", "windhoek.jpg", "rome.jpg", "nan.jpg"])
    table = write_csv(tmp_path / "t.csv", ["image", "lat", "lon", "country", "region", "city"], [
        ["paris.jpg", 48.8566, 2.3522, "NaN", "nan", "None"],  # what pandas' to_csv writes, and worse
        ["windhoek.jpg", -22.5609, 17.0658, "NA", "<NA>", "null"],  # NA is Namibia, not a missing value
        ["rome.jpg", 41.9028, 12.4964, "", "#N/A", "NULL"],
        ["NaN", 40.4168, -3.7038, "ES", "", ""],  # a missing image name is not a file called "NaN"
    ])
    out = tmp_path / "t.jsonl"
    assert convert_main(convert_args("csv", table, images, out, "--no_swap_latlon")) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["paris.jpg", "windhoek.jpg", "rome.jpg"]
    paris, windhoek, rome = rows
    nearest = reverse_geocode([48.8566], [2.3522])[0]
    assert (paris["country"], paris["region"], paris["city"]) == ("FR", nearest.region, nearest.city)
    assert windhoek["country"] == "NA" and windhoek["city"] and windhoek["city"].lower() != "null"
    assert rome["country"] == "IT" and rome["city"]
    for row in rows:
        assert not {str(row[k]).lower() for k in ("country", "region", "city")} & {"nan", "none", "null", "<na>"}
        assert "nan" not in row["conversations"][1]["value"].lower().split()


def test_large_tables_are_sampled_across_the_whole_file(tmp_path, capsys, monkeypatch):
    """Past READ_ALL_BYTES, rows are read at evenly spaced byte offsets (here more offsets than lines, so
    every line, the last included, is read once) and a row named in a message has its exact line."""
    from open_r1.data.convert import latlon

    monkeypatch.setattr(latlon, "READ_ALL_BYTES", 0)
    monkeypatch.setattr(latlon, "SAMPLE_ROWS", 200)
    rows = [*(IM2GPS_ROWS * 6), AUCKLAND]  # 48 rows over no value beyond +-90, then one
    table, images = im2gps_table(tmp_path, ["image", "author", "lat", "lon"], rows, "big.csv")
    out = tmp_path / "big.jsonl"
    assert convert_main(convert_args("csv", table, images, out, "--swap_latlon", "--max_rows", "1")) == 2
    error = capsys.readouterr().err
    assert f"{table}:50: field 'lon': 174.7654 is not a latitude (|lat| > 90) with --swap_latlon" in error
    assert convert_main(convert_args("csv", table, images, out, "--max_rows", "1")) == 0
    assert "'lat' holds the latitudes" in capsys.readouterr().out
