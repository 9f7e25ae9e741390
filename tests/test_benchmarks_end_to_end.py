"""End to end on each benchmark's own layout: a small table in the benchmark file's column layout, JPEGs for its
rows, the converter run as a user runs it, then `open_r1.eval_geo --benchmark <name> --compare` on the tiny
model; the comparison holds the benchmark's published rows and this run's, and `metrics.json` names every metric.
The layouts: IM2GPS3K's fixed places365 header with verbatim rows; YFCC4K's `IMG_ID`, `LAT`, `LON` (the rest of
the header and the rows invented); OSV-5M's 32-column `test.csv` (and the 19-column variant) with one real row.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from trl import TrlParser

from open_r1 import eval_geo
from open_r1.configs import EvalArguments, ModelArguments, SamplingArguments
from open_r1.data import load_rows
from open_r1.data.convert.__main__ import main as convert_main
from open_r1.evaluation.records import build_records

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = REPO / "src" / "open_r1" / "evaluation" / "published_results.csv"
METRIC_NAMES = {"num_images", "num_guesses", "metric_set", "model", "benchmark", "acc@1km", "acc@25km",
                "acc@200km", "acc@750km", "acc@2500km", "mean_km", "median_km", "geoguessr", "country_acc",
                "region_acc", "city_acc", "parse_failure_rate", "failure_km"}

PLACES365_HEADER = ["IMG_ID", "AUTHOR", "LAT", "LON", "S3_Label", "S16_Label", "S365_Label", "Prob_indoor",
                    "Prob_natural", "Prob_urban"]
# Rows of im2gps3k_places365.csv (GeoEstimation, meta/ at 5e091c0), with the country each lies in.
IM2GPS3K_ROWS = [
    (["1058450330_29b27f18cc_1304_52057668@N00.jpg", "52057668@N00", "48.858842", "2.329101", "2", "10", "218",
      "0.00045861595006080336", "0.11096282643839572", "0.8885786170870063"], "FR"),  # Paris
    (["103442236_09c8d53dbc_37_73293249@N00.jpg", "73293249@N00", "51.501821", "-0.140655", "2", "11", "84",
      "2.8096916501851865e-05", "0.0027554163005714116", "0.9972163453404939"], "GB"),  # London
    (["104132709_97b998c989_41_19355699@N00.jpg", "19355699@N00", "-33.861328", "151.209039", "2", "12", "273",
      "0.0006793025029674382", "0.030421694600340388", "0.9688990725317677"], "AU"),  # Sydney
    (["103558896_55f8059bc9_35_73293249@N00.jpg", "73293249@N00", "43.642423", "-79.387153", "2", "15", "307",
      "4.732878279864114e-06", "8.344243990691252e-05", "0.9999118898451005"], "CA"),  # Toronto
    (["1085645221_dad5caca79_1379_33463080@N00.jpg", "33463080@N00", "13.732881", "100.503273", "0", "1", "217",
      "0.9610089982698184", "0.0011523937789590377", "0.037838509786453756"], "TH"),  # Bangkok
]
# Invented rows in the yfcc4k_places365.csv layout (see the module docstring), at real places.
YFCC4K_ROWS = [
    (["10201275523.jpg", "24854893@N00", "41.890210", "12.492231", "2", "12", "142", "0.011", "0.102", "0.887"],
     "IT"),  # Rome, the Colosseum
    (["3485206617.jpg", "35468147887@N01", "40.748441", "-73.985664", "2", "14", "339", "0.020", "0.051", "0.929"],
     "US"),  # New York
    (["5927713348.jpg", "61532781@N04", "35.658581", "139.745433", "2", "15", "308", "0.004", "0.038", "0.958"],
     "JP"),  # Tokyo
    (["8149872906.jpg", "12037949754@N01", "-22.951916", "-43.210487", "1", "7", "232", "0.001", "0.734", "0.265"],
     "BR"),  # Rio de Janeiro
    (["2607428475.jpg", "7132415@N03", "-33.924870", "18.424055", "2", "11", "84", "0.067", "0.159", "0.774"],
     "ZA"),  # Cape Town
]

# osv5m/osv5m test.csv: the columns its loading script declares, in its order.
OSV5M_HEADER = [
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "captured_at", "lon_bin", "lat_bin",
    "cell", "region", "sub-region", "city", "land_cover", "road_index", "drive_side", "climate", "soil", "dist_sea",
    "quadtree_10_5000", "quadtree_10_25000", "quadtree_10_1000", "quadtree_10_50000", "quadtree_10_12500",
    "quadtree_10_500", "quadtree_10_2500", "unique_region", "unique_sub-region", "unique_city", "unique_country",
    "creator_username", "creator_id",
]
# The 19-column list: the same data without the quadtree, unique_* and creator columns, labels last.
OSV5M_SHORT_HEADER = [
    "id", "latitude", "longitude", "thumb_original_url", "country", "sequence", "captured_at", "lon_bin", "lat_bin",
    "cell", "land_cover", "road_index", "drive_side", "climate", "soil", "dist_sea", "region", "sub-region", "city",
]


def osv5m_row(row_id, lat, lon, country, region, subregion, city, *, url, sequence, captured_at, cell, creator):
    """One test.csv row; the labels are what reverse_geocoder answers there (cc, admin1, admin2, name), as in
    the dataset, and the unique_* keys join them the way the dataset does ("NaN" for an empty level)."""
    lon_bin, lat_bin = cell
    key = [subregion or "NaN", region, country]
    return {
        "id": row_id, "latitude": lat, "longitude": lon, "thumb_original_url": url, "country": country,
        "sequence": sequence, "captured_at": captured_at, "lon_bin": lon_bin, "lat_bin": lat_bin,
        "cell": f"({lon_bin}, {lat_bin})", "region": region, "sub-region": subregion, "city": city,
        "land_cover": "4", "road_index": "4.661764145", "drive_side": "1", "climate": "15", "soil": "3",
        "dist_sea": "0.0068841379890803", **{c: "0" for c in OSV5M_HEADER if c.startswith("quadtree")},
        "unique_region": f"{region}_{country}", "unique_sub-region": f"{subregion}_{region}_{country}" if subregion
        else "", "unique_city": "_".join([city, *key]), "unique_country": country,
        "creator_username": creator[0], "creator_id": creator[1],
    }


OSV5M_ROWS = [
    osv5m_row("3859149887465501", "-43.804769384023", "-176.61409250805", "NZ", "Chatham Islands", "", "Waitangi",
              url="", sequence="Hq2Wd8Ls5Pz1Xc4Vb7Nm3K", captured_at="1478649600000", cell=(0, 8), creator=("roadroid", "111336221091714.0")),
    osv5m_row("494171425277869", "38.7223", "-9.1393", "PT", "Lisbon", "Lisbon", "Lisbon",
              url="https://scontent.xx.fbcdn.net/m1/v/t6/An8lisbon?stp=s2048x1536&ccb=10-5&oh=00_A1&_nc_sid=201bca",
              sequence="kPq1Vf0xZ3nLr7aTbWc2Yd", captured_at="1560172800000", cell=(48, 72),
              creator=("lisboa-mapper", "100203040506070.0")),
    osv5m_row("1120930618423956", "-1.2864", "36.8172", "KE", "Nairobi Area", "", "Nairobi",
              url="https://scontent.xx.fbcdn.net/m1/v/t6/An8nairobi?stp=s2048x1536&ccb=10-5&oh=00_B2&_nc_sid=201bca",
              sequence="Qm7Rt2Lw9XsPa4Ke1Nb6Uc", captured_at="1583020800000", cell=(60, 49),
              creator=("kenya-streets", "102030405060708.0")),
    osv5m_row("318829059918476", "45.4642", "9.19", "IT", "Lombardy", "Citta metropolitana di Milano", "Milano",
              url="https://scontent.xx.fbcdn.net/m1/v/t6/An8milano?stp=s2048x1536&ccb=10-5&oh=00_C3&_nc_sid=201bca",
              sequence="Zx3Cv5Bn7Ml9Kj1Hg2Fd4S", captured_at="1625097600000", cell=(52, 75),
              creator=("milano-cycling", "104050607080901.0")),
]


def write_table(path: Path, header: list[str], rows: list) -> Path:
    """A CSV as the benchmarks ship it: a header line, then one line per row (dict rows go by column name)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[c] for c in header] if isinstance(row, dict) else row)
    return path


def write_jpegs(folder: Path, names: list[str], size=(96, 64)) -> None:
    """Small photo-like JPEGs (a gradient and a horizon, one colour per image)."""
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        image.paste((40 + 45 * i % 200, 120, 200 - 30 * i % 150), (0, 0, size[0], size[1] // 2))  # sky
        image.save(path, "JPEG", quality=85)


def convert_cli(benchmark: str, table: Path, images: Path, out: Path) -> str:
    """`python -m open_r1.data.convert BENCHMARK --csv ... --images ... --out ...`, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "open_r1.data.convert", benchmark, "--csv", str(table), "--images", str(images),
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_eval(model: Path, data: Path, images: Path, out: Path, benchmark: str, *extra: str) -> dict:
    argv = ["--model_name_or_path", str(model), "--data_file_paths", str(data), "--image_folders", str(images),
            "--output_dir", str(out), "--benchmark", benchmark, "--compare", "--no_plots", "--batch_size", "8",
            "--max_new_tokens", "4", "--max_pixels", "12544", *extra]
    return eval_geo.main(*TrlParser((EvalArguments, ModelArguments, SamplingArguments)).parse_args_and_config(argv))


def published_rows(benchmark: str) -> list[dict]:
    """The benchmark's rows of published_results.csv, read with the csv module (not with the code under test)."""
    with open(PUBLISHED, encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    return [row for row in csv.DictReader(lines) if row["benchmark"].strip().lower() == benchmark]


def check_comparison(printed: str, benchmark: str, run: str, metrics: dict) -> None:
    """The table --compare printed: every published row of the benchmark with its numbers and source, in file
    order, then this run's row with its own numbers."""
    published = published_rows(benchmark)
    if not published:
        assert f"No published results for {benchmark}" in printed
        return
    lines = printed.splitlines()
    start = lines.index(f"{benchmark}: accuracies in % of images")
    header = re.split(r"\s{2,}", lines[start + 1].strip())
    assert header[0] == "method" and {"acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km"} <= set(header)
    assert set(lines[start + 2]) <= {"-", " "}
    body = [re.split(r"\s{2,}", line.strip()) for line in lines[start + 3:start + 4 + len(published)]]
    assert [cells[0] for cells in body] == [f"{p['method']} [{i}]" for i, p in enumerate(published, 1)] + [run]
    for cells, row in zip(body, [*published, None]):
        assert len(cells) == len(header), cells
        for column, cell in zip(header[1:], cells[1:]):
            if not column.startswith("acc@"):
                continue
            expected = (float(row[column]) if row[column].strip() else None) if row else metrics[column]
            assert cell == ("-" if expected is None else f"{expected:.2f}"), (cells[0], column)
    for i, row in enumerate(published, 1):
        assert f"[{i}] {row['source']}" in printed


def check_metrics_file(out: Path, benchmark: str, metric_set: str, n_rows: int, returned: dict) -> dict:
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == returned
    assert METRIC_NAMES <= set(saved), METRIC_NAMES - set(saved)
    assert (saved["benchmark"], saved["metric_set"], saved["num_images"]) == (benchmark, metric_set, n_rows)
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == n_rows
    return saved


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("benchmark", "table_name", "folder", "rows"),
    [("im2gps3k", "im2gps3k_places365.csv", "im2gps3ktest", IM2GPS3K_ROWS),
     ("yfcc4k", "yfcc4k_places365.csv", "yfcc4k", YFCC4K_ROWS)],
)
def test_places365_benchmark_converts_evaluates_and_compares(benchmark, table_name, folder, rows, tmp_path,
                                                             tiny_model_dir, capsys):
    images = tmp_path / folder
    write_jpegs(images, [values[0] for values, _ in rows])
    table = write_table(tmp_path / table_name, PLACES365_HEADER, [values for values, _ in rows])
    data = tmp_path / "data" / benchmark / "test.jsonl"

    printed = convert_cli(benchmark, table, images, data)
    assert "'LAT' holds the latitudes and 'LON' the longitudes" in printed
    if benchmark == "im2gps3k":  # recognised as the GeoEstimation file, by its header and its Flickr ids
        assert "im2gps3k_places365.csv (or im2gps_places365.csv) as fixed on 2020-02-17" in printed
    assert f"wrote {len(rows)} rows" in printed and "skipped 0 rows" in printed
    converted = read_jsonl(data)
    assert [(r["id"], r["image"]) for r in converted] == [(v[0], v[0]) for v, _ in rows]
    assert [(r["lat"], r["lon"], r["country"]) for r in converted] == [
        (float(v[2]), float(v[3]), country) for v, country in rows
    ]

    out = tmp_path / "eval"
    metrics = run_eval(tiny_model_dir, data, images, out, benchmark)
    check_metrics_file(out, benchmark, "geo_r", len(rows), metrics)
    check_comparison(capsys.readouterr().out, benchmark, tiny_model_dir.name, metrics)


def test_osv5m_converts_evaluates_compares_and_scores_sub_regions(tmp_path, tiny_model_dir, capsys):
    images = tmp_path / "osv5m" / "images" / "test"  # the test zips unpack into 00/, 01/, ...
    write_jpegs(images, [f"{i:02d}/{row['id']}.jpg" for i, row in enumerate(OSV5M_ROWS)], size=(128, 96))
    table = write_table(tmp_path / "osv5m" / "test.csv", OSV5M_HEADER, OSV5M_ROWS)
    data = tmp_path / "data" / "osv5m" / "test.jsonl"

    printed = convert_cli("osv5m", table, images, data)
    assert "'latitude' holds the latitudes and 'longitude' the longitudes" in printed
    assert f"wrote {len(OSV5M_ROWS)} rows" in printed and "skipped 0 rows" in printed
    converted = read_jsonl(data)
    assert [(r["id"], r["image"]) for r in converted] == [
        (row["id"], f"{i:02d}/{row['id']}.jpg") for i, row in enumerate(OSV5M_ROWS)
    ]
    assert [(r["lat"], r["lon"], r["country"], r["region"], r["city"]) for r in converted] == [
        (round(float(row["latitude"]), 6), round(float(row["longitude"]), 6), row["country"], row["region"],
         row["city"]) for row in OSV5M_ROWS  # the converter keeps 6 decimals (0.1 m)
    ]
    # the 19-column copies of test.csv give the same rows
    short = write_table(tmp_path / "osv5m" / "test_short.csv", OSV5M_SHORT_HEADER, OSV5M_ROWS)
    again = tmp_path / "data" / "osv5m" / "test_short.jsonl"
    assert convert_main(["osv5m", "--csv", str(short), "--images", str(images), "--out", str(again), "--quiet"]) == 0
    assert read_jsonl(again) == converted

    out = tmp_path / "eval"
    metrics = run_eval(tiny_model_dir, data, images, out, "osv5m")
    check_metrics_file(out, "osv5m", "geo_r", len(OSV5M_ROWS), metrics)
    check_comparison(capsys.readouterr().out, "osv5m", tiny_model_dir.name, metrics)

    # OSV-5M's own definitions, rescored from the same predictions (nothing generated again)
    osv5m = run_eval(tiny_model_dir, data, images, out, "osv5m", "--metrics", "osv5m")
    saved = check_metrics_file(out, "osv5m", "osv5m", len(OSV5M_ROWS), osv5m)
    assert {"subregion_acc", "country_acc", "region_acc", "city_acc"} <= set(saved)
    printed = capsys.readouterr().out
    assert "sub-region accuracy" in printed and "osv5m (OSV-5M's exactly)" in printed
    check_comparison(printed, "osv5m", tiny_model_dir.name, osv5m)

    # Guesses on the truth score 100 % at every OSV-5M level, the sub-region included (Waitangi, Nairobi: no
    # sub-region, so left out of that level's denominator)
    rows = load_rows(str(data), str(images))
    exact = tmp_path / "exact"
    exact.mkdir()
    completions = [[f"<answer>Latitude: {r.lat:.6f}\nLongitude: {r.lon:.6f}</answer>"] for r in rows]
    (exact / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in build_records(rows, completions)))
    perfect = run_eval(tiny_model_dir, data, images, exact, "osv5m", "--metrics", "osv5m")
    assert perfect["parse_failure_rate"] == 0
    for level in ("country_acc", "region_acc", "subregion_acc", "city_acc"):
        assert perfect[level] == pytest.approx(100.0), level
