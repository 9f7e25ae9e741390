"""The published-results table: its rows, its validation, and the comparison printed from it."""

from __future__ import annotations

import pytest

from open_r1.evaluation.published import PublishedTableError, guess_benchmark, load_published
from open_r1.evaluation.report import comparison_table, metrics_table


def test_every_row_has_a_source_and_the_known_numbers():
    rows = load_published()
    assert rows and all(r.source for r in rows)
    geoclip = {r.benchmark: r.metrics for r in rows if r.method == "GeoCLIP"}
    assert [geoclip["im2gps3k"][f"acc@{t}km"] for t in (1, 25, 200, 750, 2500)] == [14.11, 34.47, 50.65, 69.67, 83.82]
    assert [geoclip["yfcc4k"][f"acc@{t}km"] for t in (1, 25, 200, 750, 2500)] == [9.59, 19.31, 32.63, 55.0, 74.69]
    pigeotto = {r.benchmark: r.metrics for r in rows if r.method == "PIGEOTTO"}
    assert [pigeotto["im2gps3k"][f"acc@{t}km"] for t in (1, 25, 200, 750, 2500)] == [11.3, 36.7, 53.8, 72.4, 85.3]
    assert [pigeotto["yfcc4k"][f"acc@{t}km"] for t in (1, 25, 200, 750, 2500)] == [10.4, 23.7, 40.6, 62.2, 77.7]
    assert {r.benchmark for r in load_published(benchmark="yfcc4k")} == {"yfcc4k"}


# The reasoning-VLM rows on IM2GPS3K, acc@1/25/200/750/2500 km as their papers report them.
REASONING_VLMS = {
    "Geo-R (Qwen2.5-VL-7B, SFT+GRPO)": [18.10, 41.53, 58.31, 75.33, 86.42],
    "GLOBE (Qwen2.5-VL-7B, GRPO)": [9.84, 40.18, 56.19, 71.45, 82.38],
    "G3": [16.65, 40.94, 55.56, 71.24, 84.68],
    "Img2Loc": [17.1, 45.1, 57.9, 72.9, 84.7],
    "GeoRanker": [18.79, 45.05, 61.49, 76.31, 89.29],
}


@pytest.mark.parametrize("method, accuracies", REASONING_VLMS.items())
def test_reasoning_vlm_rows_on_im2gps3k_carry_their_numbers_and_whether_they_were_checked(method, accuracies):
    (row,) = [r for r in load_published(benchmark="im2gps3k") if r.method == method]
    assert [row.metrics[f"acc@{t}km"] for t in (1, 25, 200, 750, 2500)] == accuracies
    assert "checked" in row.source.lower()  # every row says how far its figures were checked


def test_a_broken_table_names_file_line_and_column(tmp_path):
    header = ("benchmark,method,acc@1km,acc@25km,acc@200km,acc@750km,acc@2500km,median_km,geoguessr,"
              "country_acc,region_acc,city_acc,source,table\n")
    path = tmp_path / "t.csv"
    path.write_text("# comment\n" + header + "im2gps3k,X,1.0,abc,,,,,,,,,paper,\n")
    with pytest.raises(PublishedTableError, match=r"t.csv:3: column 'acc@25km': not a number"):
        load_published(path)
    path.write_text(header + "imagenet,X,1,,,,,,,,,,paper,\n")
    with pytest.raises(PublishedTableError, match=r"t.csv:2: column 'benchmark'"):
        load_published(path)
    path.write_text(header + "im2gps3k,X,1,,,,,,,,,,,\n")
    with pytest.raises(PublishedTableError, match=r"t.csv:2: columns 'method' and 'source'"):
        load_published(path)


def test_benchmark_is_guessed_from_the_data_path_only_when_unambiguous():
    assert guess_benchmark("data/im2gps3k/test.jsonl") == "im2gps3k"
    assert guess_benchmark("/d/OSV-5M/test.jsonl") == "osv5m"
    assert guess_benchmark("data/demo/test.jsonl") is None
    assert guess_benchmark("yfcc4k.jsonl:im2gps3k.jsonl") is None


def test_comparison_puts_the_run_under_the_published_rows_with_numbered_sources():
    metrics = {"acc@1km": 1.5, "acc@25km": 2.0, "acc@200km": 3.0, "acc@750km": 4.0, "acc@2500km": 50.0,
               "median_km": 900.0, "geoguessr": 2000.0}
    text = comparison_table(metrics, load_published(benchmark="im2gps3k"), "im2gps3k", "my-run")
    lines = text.splitlines()
    run_line = next(line for line in lines if line.startswith("my-run"))
    assert run_line.split()[1:] == ["1.50", "2.00", "3.00", "4.00", "50.00"]  # only the columns sources report
    assert any(line.startswith("GeoCLIP [") and "14.11" in line for line in lines)
    assert any(line.startswith("[1] ") and "NeurIPS 2023" in line for line in lines)
    assert "No published results" in comparison_table(metrics, [], "osv5m")


def test_metrics_table_prints_every_metric_and_the_k_guess_block():
    metrics = {"num_images": 2, "num_guesses": 3, "acc@1km": 50.0, "acc@25km": 50.0, "acc@200km": 50.0,
               "acc@750km": 50.0, "acc@2500km": 100.0, "mean_km": 10.0, "median_km": 5.0, "geoguessr": 4000.0,
               "country_acc": 100.0, "region_acc": None, "city_acc": 0.0, "parse_failure_rate": 0.0,
               "best_of_k/acc@1km": 100.0, "best_of_k/acc@25km": 100.0, "best_of_k/acc@200km": 100.0,
               "best_of_k/acc@750km": 100.0, "best_of_k/acc@2500km": 100.0, "best_of_k/mean_km": 0.5,
               "best_of_k/median_km": 0.5, "best_of_k/geoguessr": 4999.0, "metric_set": "osv5m",
               "subregion_acc": 50.0, "top5_level": "region", "top5_classification": 0.6, "top5_weighted_score": 0.66}
    text = metrics_table(metrics)
    for label in ("acc@1km (street)", "acc@2500km (continent)", "median error", "GeoGuessr score",
                  "country accuracy", "sub-region accuracy", "city accuracy", "unparseable answers", "best of 3",
                  "metric definitions", "osv5m", "top-5 region credit"):
        assert label in text
    region = next(line for line in text.splitlines() if line.startswith("region accuracy"))
    assert region.split()[-1] == "-"  # no image labelled at that level
    score = next(line for line in text.splitlines() if line.startswith("top-5 weighted score"))
    assert score.split()[-3:] == ["0.6600", "/", "1"]
