"""Evaluation metrics on hand-built predictions whose answers are known."""

from __future__ import annotations

import math

import pytest

from open_r1.data.rows import Row
from open_r1.evaluation.metrics import (
    FAILURE_KM,
    compute_metrics,
    distance_metrics,
    place_accuracy,
    place_matches,
    rank_guesses,
    top5_weighted_score,
)
from open_r1.evaluation.records import build_records

PARIS = (48.8534, 2.3488)
KM_PER_DEGREE = math.pi * 6371.0088 / 180.0  # along a meridian, on the sphere the metrics use


def answer(lat: float, lon: float) -> str:
    return f"<think>Signs in French.</think>\n<answer>Latitude: {lat:.6f}\nLongitude: {lon:.6f}</answer>"


def north_of_paris(km: float) -> str:
    return answer(PARIS[0] + km / KM_PER_DEGREE, PARIS[1])


def paris_row(row_id: str = "p", **labels) -> Row:
    labels = labels or {"country": "FR", "region": "Ile-de-France", "city": "Paris"}
    return Row(id=row_id, image_paths=["x.jpg"], question="", solution="", lat=PARIS[0], lon=PARIS[1],
               source=f"test.jsonl:{row_id}", **labels)


def test_failure_distance_is_half_a_great_circle():
    assert FAILURE_KM == pytest.approx(20015.114, abs=1e-3)


def test_thresholds_count_half_a_km_at_1_km_but_not_30_km_at_25_km_and_failures_everywhere_wrong():
    rows = [paris_row("near"), paris_row("far"), paris_row("none")]
    records = build_records(rows, [[north_of_paris(0.5)], [north_of_paris(30.0)], ["Somewhere in Europe, I think."]])
    assert [r["parsed"] for r in records] == [True, True, False]
    assert records[0]["error_km"] == pytest.approx(0.5, abs=1e-4)
    assert records[1]["error_km"] == pytest.approx(30.0, abs=1e-3)
    assert records[2]["error_km"] == FAILURE_KM and records[2]["geoguessr"] == 0.0

    m = compute_metrics(records)
    third = 100.0 / 3
    assert m["acc@1km"] == pytest.approx(third)
    assert m["acc@25km"] == pytest.approx(third)
    assert m["acc@200km"] == pytest.approx(2 * third)
    assert m["acc@750km"] == pytest.approx(2 * third) and m["acc@2500km"] == pytest.approx(2 * third)
    assert m["parse_failure_rate"] == pytest.approx(third)
    assert m["mean_km"] == pytest.approx((0.5 + 30.0 + 20015.1144) / 3, abs=1e-3)
    assert m["median_km"] == pytest.approx(30.0, abs=1e-3)
    # 5000 * exp(-km / 1492.7) for 0.5 and 30 km, and 0 points for the failure
    assert m["geoguessr"] == pytest.approx((4998.32546 + 4900.51403 + 0.0) / 3, abs=1e-3)
    assert m["num_images"] == 3 and m["num_guesses"] == 1 and "top5_weighted_score" not in m


def test_a_failure_is_wrong_at_every_threshold_whatever_error_it_carries():
    m = distance_metrics([0.0, 0.0], [True, False])
    assert m["acc@1km"] == 50.0 and m["acc@2500km"] == 50.0
    assert m["geoguessr"] == 2500.0


def test_place_levels_compare_codes_and_normalised_names_inside_the_right_country():
    truth = {"country": "France", "region": "Ile-de-France", "city": "Paris"}
    assert place_matches({"country": "FR", "region": "Île-de-France", "city": "Paris"}, truth) == \
        {"country": True, "region": True, "city": True}
    assert place_matches({"country": "FR", "region": "Rhone-Alpes", "city": "Paris"}, truth) == \
        {"country": True, "region": False, "city": False}
    # a region of the same name in another country is not the region
    assert place_matches({"country": "BE", "region": "Limburg"}, {"country": "NL", "region": "Limburg"}) == \
        {"country": False, "region": False, "city": None}
    assert place_matches(None, truth) == {"country": False, "region": False, "city": False}


def test_place_accuracy_leaves_unlabelled_levels_out_of_the_denominator():
    records = [
        {"pred_place": {"country": "FR", "region": "Ile-de-France", "city": "Paris"},
         "true_place": {"country": "FR", "region": "Ile-de-France", "city": "Paris"}},
        {"pred_place": {"country": "FR", "region": "Bretagne", "city": "Rennes"},
         "true_place": {"country": "FR", "region": None, "city": None}},
        {"pred_place": None, "true_place": {"country": "PT", "region": "Lisbon", "city": "Lisbon"}},
    ]
    assert place_accuracy(records) == {"country_acc": pytest.approx(200 / 3), "region_acc": 50.0, "city_acc": 50.0}


def test_country_region_city_accuracy_reverse_geocodes_the_predicted_point():
    rows = [paris_row("paris"), paris_row("lyon"), paris_row("berlin"), paris_row("geocoded", country=None)]
    completions = [[north_of_paris(0.5)], [answer(45.7640, 4.8357)], [answer(52.5200, 13.4050)], [answer(*PARIS)]]
    records = build_records(rows, completions)
    assert records[1]["pred_place"]["country"] == "FR" and records[2]["pred_place"]["country"] == "DE"
    assert records[3]["true_place"] == {"country": "FR", "region": "Ile-de-France", "city": "Paris"}  # from geocoder
    m = compute_metrics(records)
    assert m["country_acc"] == 75.0  # Paris, Lyon, exact Paris
    assert m["region_acc"] == 50.0 and m["city_acc"] == 50.0  # Lyon is another region and city


def test_geocode_labels_ignores_the_rows_labels():
    row = paris_row("p", country="ES", region="Madrid", city="Madrid")  # wrong labels on purpose
    assert build_records([row], [[answer(*PARIS)]])[0]["true_place"]["country"] == "ES"
    truth = build_records([row], [[answer(*PARIS)]], geocode_labels=True)[0]["true_place"]
    assert truth == {"country": "FR", "region": "Ile-de-France", "city": "Paris"}


def test_top5_weighted_score_matches_hand_computed_values():
    e = 5000 * math.exp(-1)  # a guess 1492.7 km away: 1839.397 points
    # (1 * 5000 + 0.6 * 1839.397 + 0.4 * 0 + 0.25 * 5000 + 0.15 * 0) / 2.4 = 7353.638 / 2.4
    assert top5_weighted_score([5000, e, 0, 5000, 0]) == pytest.approx(3064.0160, abs=1e-3)
    assert top5_weighted_score([5000] * 5) == pytest.approx(5000)
    assert top5_weighted_score([5000]) == pytest.approx(2083.333, abs=1e-3)  # missing positions score 0
    assert top5_weighted_score([5000, 5000]) == pytest.approx(3333.333, abs=1e-3)
    assert top5_weighted_score([0, 0, 0, 0, 0, 5000]) == 0.0  # a sixth guess is ignored


def test_guesses_are_ranked_by_agreement_with_failures_last():
    tokyo = (35.6762, 139.6503)
    lats = [tokyo[0], PARIS[0] + 0.5 / KM_PER_DEGREE, PARIS[0], None, PARIS[0] + 30 / KM_PER_DEGREE]
    lons = [tokyo[1], PARIS[1], PARIS[1], None, PARIS[1]]
    # the point between the other two Paris guesses has the most support, then exact Paris, then +30 km
    assert rank_guesses(lats, lons) == [1, 2, 4, 0, 3]
    assert rank_guesses([None, None], [None, None]) == [0, 1]
    assert rank_guesses([10.0, 10.0], [20.0, 20.0]) == [0, 1]  # ties keep sampling order


def test_k_guesses_give_best_of_k_and_the_weighted_score_of_the_ranked_guesses():
    completions = [answer(35.6762, 139.6503), north_of_paris(30.0), "no idea", north_of_paris(0.0)]
    record = build_records([paris_row()], [completions])[0]
    guesses = record["guesses"]
    assert [g["sample"] for g in guesses] == [1, 3, 0, 2]
    assert record["completion"] == completions[1] and record["error_km"] == pytest.approx(30.0, abs=1e-3)
    m = compute_metrics([record])
    assert m["num_guesses"] == 4
    assert m["acc@25km"] == 0.0 and m["best_of_k/acc@1km"] == 100.0
    assert m["best_of_k/median_km"] == pytest.approx(0.0, abs=1e-6)
    assert m["best_of_k/geoguessr"] == pytest.approx(5000.0)
    expected = (1.0 * guesses[0]["geoguessr"] + 0.6 * 5000.0 + 0.4 * guesses[2]["geoguessr"] + 0.25 * 0.0) / 2.4
    assert m["top5_weighted_score"] == pytest.approx(expected)


def test_rows_without_true_coordinates_are_refused_with_their_location():
    row = Row(id="x", image_paths=["x.jpg"], question="", solution="", source="data.jsonl:7")
    with pytest.raises(ValueError, match=r"data.jsonl:7: field 'lat'"):
        build_records([row], [["<answer>Latitude: 1\nLongitude: 2</answer>"]])
