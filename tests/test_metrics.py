"""Evaluation metrics on hand-built predictions whose answers are known."""

from __future__ import annotations

import math

import pytest

from open_r1.data.rows import Row
from open_r1.evaluation.metrics import (
    FAILURE_KM,
    compute_metrics,
    distance_metrics,
    osv5m_errors_km,
    osv5m_place_keys,
    place_accuracy,
    place_matches,
    rank_guesses,
    top5_credit,
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


def test_top5_credit_is_that_of_the_first_correct_guess():
    # positions 1-5 earn 100 / 60 / 40 / 25 / 15 % of the credit; only the first correct guess counts
    assert top5_credit([True, True, True]) == 1.0
    assert top5_credit([False, True, False, True]) == 0.6
    assert top5_credit([False, False, True]) == 0.4
    assert top5_credit([False, False, False, True, True]) == 0.25
    assert top5_credit([False, False, False, False, True]) == 0.15
    assert top5_credit([False] * 5 + [True]) == 0.0  # a sixth guess is ignored
    assert top5_credit([]) == 0.0 and top5_credit([False]) == 0.0


def test_top5_weighted_score_is_seven_tenths_classification_and_three_tenths_distance():
    # 0.7 * 0.6 + 0.3 * (1 - 1000 / 5000) = 0.42 + 0.24
    assert top5_weighted_score(0.6, 1000.0) == pytest.approx(0.66)
    assert top5_weighted_score(1.0, 0.0) == pytest.approx(1.0)
    assert top5_weighted_score(0.5, 5000.0) == pytest.approx(0.35)  # the distance part reaches 0 at 5000 km
    assert top5_weighted_score(0.5, 20015.0) == pytest.approx(0.35)  # and never goes below it


def guess(lat, lon, km):
    return {"lat": lat, "lon": lon, "parsed": True, "error_km": km, "geoguessr": 0.0}


NO_GUESS = {"lat": None, "lon": None, "parsed": False, "error_km": FAILURE_KM, "geoguessr": 0.0}
LYON, TOKYO, SYDNEY = (45.7640, 4.8357), (35.6762, 139.6503), (-33.8688, 151.2093)


def ranked_record(guesses, true_place, true=PARIS):
    top = guesses[0]
    return {"id": "r", "parsed": top["parsed"], "pred_lat": top["lat"], "pred_lon": top["lon"],
            "error_km": top["error_km"], "true_lat": true[0], "true_lon": true[1], "true_place": true_place,
            "pred_place": None, "guesses": guesses}


PARIS_PLACE = {"country": "FR", "region": "Ile-de-France", "city": "Paris"}


@pytest.mark.parametrize("level, classification", [("region", 0.3), ("country", 0.5), ("city", 0.3)])
def test_top5_weighted_score_of_a_run_credits_the_first_guess_at_the_chosen_level(level, classification):
    # Image 1: Lyon (France, another region), then Paris, then a failure. Image 2: Tokyo, then Sydney.
    # Region and city: image 1 earns position 2's 0.6, image 2 nothing -> 0.3. Country: Lyon is already in
    # France -> (1.0 + 0) / 2. The error_km of the top guesses are 400 and 1600 km, so mean 1000 km.
    records = [
        ranked_record([guess(*LYON, 400.0), guess(*PARIS, 0.0), NO_GUESS], PARIS_PLACE),
        ranked_record([guess(*TOKYO, 1600.0), guess(*SYDNEY, 1700.0)], PARIS_PLACE),
    ]
    m = compute_metrics(records, top5_level=level)
    assert m["mean_km"] == pytest.approx(1000.0)
    assert m["top5_level"] == level and m["top5_classification"] == pytest.approx(classification)
    assert m["top5_weighted_score"] == pytest.approx(0.7 * classification + 0.3 * 0.8)


def test_top5_leaves_images_without_a_true_label_at_the_level_out():
    records = [
        ranked_record([guess(*LYON, 400.0), guess(*PARIS, 0.0)], PARIS_PLACE),
        ranked_record([guess(*PARIS, 400.0), guess(*PARIS, 0.0)], {"country": "FR", "region": None, "city": None}),
    ]
    assert compute_metrics(records)["top5_classification"] == pytest.approx(0.6)  # the second image is left out
    assert compute_metrics(records, top5_level="country")["top5_classification"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="--top5_level"):
        compute_metrics(records, top5_level="state")


def test_guesses_are_ranked_by_agreement_with_failures_last():
    tokyo = TOKYO
    lats = [tokyo[0], PARIS[0] + 0.5 / KM_PER_DEGREE, PARIS[0], None, PARIS[0] + 30 / KM_PER_DEGREE]
    lons = [tokyo[1], PARIS[1], PARIS[1], None, PARIS[1]]
    # the point between the other two Paris guesses has the most support, then exact Paris, then +30 km
    assert rank_guesses(lats, lons) == [1, 2, 4, 0, 3]
    assert rank_guesses([None, None], [None, None]) == [0, 1]
    assert rank_guesses([10.0, 10.0], [20.0, 20.0]) == [0, 1]  # ties keep sampling order


def test_k_guesses_give_best_of_k_and_the_weighted_score_of_the_ranked_guesses():
    completions = [answer(*TOKYO), north_of_paris(30.0), "no idea", north_of_paris(0.0)]
    record = build_records([paris_row()], [completions])[0]
    guesses = record["guesses"]
    assert [g["sample"] for g in guesses] == [1, 3, 0, 2]
    assert record["completion"] == completions[1] and record["error_km"] == pytest.approx(30.0, abs=1e-3)
    m = compute_metrics([record], top5_level="city")
    assert m["num_guesses"] == 4
    assert m["acc@25km"] == 0.0 and m["best_of_k/acc@1km"] == 100.0
    assert m["best_of_k/median_km"] == pytest.approx(0.0, abs=1e-6)
    assert m["best_of_k/geoguessr"] == pytest.approx(5000.0)
    # 30 km north of Paris is another town: the first right city is the exact guess, ranked second (0.6);
    # the distance part is 1 - 30 / 5000.
    assert m["top5_classification"] == pytest.approx(0.6)
    assert m["top5_weighted_score"] == pytest.approx(0.7 * 0.6 + 0.3 * (1 - 30.0 / 5000), abs=1e-6)
    assert compute_metrics([record], top5_level="country")["top5_classification"] == pytest.approx(1.0)


# --- OSV-5M's definitions ----------------------------------------------------------------------------------

def test_metric_sets_are_named_in_the_metrics():
    records = build_records([paris_row()], [[answer(*PARIS)]])
    assert compute_metrics(records)["metric_set"] == "geo_r"
    assert compute_metrics(records, "osv5m")["metric_set"] == "osv5m"
    with pytest.raises(ValueError, match="--metrics"):
        compute_metrics(records, "im2gps")


def test_osv5m_thresholds_are_strict_and_ours_inclusive():
    ours = distance_metrics([25.0, 1.0], [True, True])
    theirs = distance_metrics([25.0, 1.0], [True, True], strict=True)
    assert (ours["acc@1km"], ours["acc@25km"]) == (50.0, 100.0)
    assert (theirs["acc@1km"], theirs["acc@25km"]) == (0.0, 50.0)  # 1 km is not < 1 km, 25 km not < 25 km


def test_osv5m_distance_is_haversine_on_6371_km_and_geoscore_its_curve():
    # one degree of latitude on R = 6371 km: 6371 * pi / 180 = 111.194927 km (ours, R = 6371.0088: 111.195081)
    assert osv5m_errors_km([1.0], [0.0], [0.0], [0.0])[0] == pytest.approx(111.194927, abs=1e-6)
    assert osv5m_errors_km([None], [None], [0.0], [0.0])[0] == pytest.approx(20015.0868, abs=1e-4)  # pi * 6371
    degrees = 1492.7 / (math.pi * 6371.0 / 180.0)  # due north by 1492.7 km on OSV-5M's sphere
    record = build_records([paris_row()], [[answer(PARIS[0] + degrees, PARIS[1])]])[0]
    m = compute_metrics([record], "osv5m")
    assert m["mean_km"] == pytest.approx(1492.7, abs=1e-3)
    assert m["geoguessr"] == pytest.approx(5000 / math.e, abs=1e-3)  # 5000 exp(-1492.7 / 1492.7) = 1839.397


def test_osv5m_places_are_reverse_geocoders_own_answer_at_both_ends():
    import reverse_geocoder

    points = [PARIS, LYON, (48.5734, 7.7521), (-16.80, -179.97), (69.6492, 18.9553), (-40.0, -120.0)]
    keys = osv5m_place_keys([p[0] for p in points], [p[1] for p in points])
    for i, found in enumerate(reverse_geocoder.search(points, mode=1, verbose=False)):
        cc, a1, a2, name = found["cc"], found["admin1"], found["admin2"], found["name"]
        assert keys["country"][i] == cc
        assert keys["region"][i] == f"{a1}_{cc}"
        assert keys["subregion"][i] == f"{a2}_{a1}_{cc}"
        assert keys["city"][i] == f"{name}_{a2}_{a1}_{cc}"
    # Taveuni, on the antimeridian: reverse_geocoder's degree-space search says Wallis and Futuna, and OSV-5M's
    # metric takes its word for it; our own geocoder (great-circle) says Fiji.
    assert keys["country"][3] == "WF"


def test_osv5m_place_accuracy_compares_keys_and_skips_empty_truth_levels():
    # truth Paris; predictions: Paris (all four levels), Lyon (country only), Strasbourg (country only), none
    rows = [paris_row(str(i)) for i in range(4)]
    completions = [[answer(*PARIS)], [answer(*LYON)], [answer(48.5734, 7.7521)], ["no idea"]]
    m = compute_metrics(build_records(rows, completions), "osv5m")
    assert m["country_acc"] == 75.0
    assert m["region_acc"] == 25.0 and m["subregion_acc"] == 25.0 and m["city_acc"] == 25.0
    # a truth whose admin2 is empty (Levashovo, St Petersburg, in the shipped GeoNames extract) has no sub-region
    keys = osv5m_place_keys([60.1], [30.2], truth=True)
    assert keys["subregion"][0] is None and keys["city"][0] == "Levashovo__St.-Petersburg_RU"


def test_rows_without_true_coordinates_are_refused_with_their_location():
    row = Row(id="x", image_paths=["x.jpg"], question="", solution="", source="data.jsonl:7")
    with pytest.raises(ValueError, match=r"data.jsonl:7: field 'lat'"):
        build_records([row], [["<answer>Latitude: 1\nLongitude: 2</answer>"]])
