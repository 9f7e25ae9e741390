"""The answer parser: every form it accepts, every answer it must refuse."""

import math
import random

import pytest

from open_r1.answer import GeoAnswer, answer_text, parse_answer, render_answer, wrap
from open_r1.answer.parse import MAX_ANSWER_CHARS, MAX_COMPLETION_CHARS, _parse_general

LISBON = (38.7167, -9.1395)

ACCEPTED = [
    ("Latitude: 38.7167\nLongitude: -9.1395", LISBON),
    ("latitude: 38.7167, longitude: -9.1395", LISBON),
    ("lat: 38.7167 lon: -9.1395", LISBON),
    ("Lat = 38.7167; Lng = -9.1395", LISBON),
    ("**Latitude:** 38.7167\n**Longitude:** \u22129.1395", LISBON),  # markdown, Unicode minus
    ("The latitude is 38.7167 and the longitude is -9.1395.", LISBON),
    ('{"lat": 38.7167, "lon": -9.1395}', LISBON),
    ('{"latitude": 38.7167, "longitude": -9.1395}', LISBON),
    ('{"coordinates": [38.7167, -9.1395]}', LISBON),
    ("{'LOC': [38.7167, -9.1395]}", LISBON),
    ("(38.7167, -9.1395)", LISBON),
    ("It is at 38.7167, -9.1395.", LISBON),
    ("Lat/Lon: 38.7167, -9.1395", LISBON),
    ("38.7167 N, 9.1395 W", LISBON),
    ("38.7167°N 9.1395°W", LISBON),
    ("38.7167° N, 9.1395° W", LISBON),
    ("9.1395 W, 38.7167 N", LISBON),  # the letters say which is which
    ("38°43'0.12\"N 9°8'22.2\"W", (38 + 43 / 60 + 0.12 / 3600, -(9 + 8 / 60 + 22.2 / 3600))),
    ("Latitude: 38° 43′ 20″ N\nLongitude: 9° 8′ 22″ W",
     (38 + 43 / 60 + 20 / 3600, -(9 + 8 / 60 + 22 / 3600))),
    ("33°52'S 151°12'E", (-(33 + 52 / 60), 151.2)),
    ("Latitude: 33.87 degrees south\nLongitude: 151.21 degrees east", (-33.87, 151.21)),
    ("38.7167 north, 9.1395 West", LISBON),
    ("Latitude: -33.8688\nLongitude: 151.2093", (-33.8688, 151.2093)),
    ("Latitude: 90\nLongitude: -180", (90.0, -180.0)),
    ("Latitude: 38.7167\nLongitude: -9.1395\nCoordinates: (38.7167, -9.1395)", LISBON),  # one pair, twice
]


@pytest.mark.parametrize("text, expected", ACCEPTED)
def test_accepted_forms(text, expected):
    answer = parse_answer(text)
    assert answer is not None
    assert (answer.lat, answer.lon) == pytest.approx(expected, abs=1e-9)


def test_names_from_lines_and_json():
    answer = parse_answer("<answer>Country: Portugal\nState: Lisbon District\nCity: Lisbon\n"
                          "Latitude: 38.7167\nLongitude: -9.1395</answer>")
    assert answer == GeoAnswer(38.7167, -9.1395, "Portugal", "Lisbon District", "Lisbon")
    answer = parse_answer('{"country": "Côte d\'Ivoire", "province": "Abidjan", "city": "Abidjan", '
                          '"lat": 5.36, "lon": -4.0083}')
    assert (answer.country, answer.region, answer.city) == ("Côte d'Ivoire", "Abidjan", "Abidjan")
    answer = parse_answer("Region: Cocos (Keeling) Islands\nLatitude: -12.1\nLongitude: 96.8")
    assert answer.region == "Cocos (Keeling) Islands" and answer.country is None


def test_conflicting_names_are_dropped_not_guessed():
    answer = parse_answer("Country: France\nCountry: Spain\nLatitude: 43.0\nLongitude: 1.0")
    assert answer is not None and answer.country is None


REJECTED = [
    "(38.72, -9.14) or (40.41, -3.70)",  # two candidate pairs
    "Latitude: 38.72\nLongitude: -9.14\nLatitude: 40.41\nLongitude: -3.70",
    "Latitude: 38.72\nLongitude: -9.14\n(40.41, -3.70)",
    "[[38.72, -9.14], [40.41, -3.70], [41.15, -8.61]]",
    "Latitude: 38.72, 40.41\nLongitude: -9.14",  # two latitudes
    "Latitude: 95.0\nLongitude: 10.0",  # out of range
    "Latitude: 45.0\nLongitude: 190.0",
    "(-91, 10)",
    "Latitude: nan\nLongitude: 10.0",
    "Latitude: NaN\nLongitude: NaN",
    "Latitude: inf\nLongitude: 10.0",
    "Latitude: 1e400\nLongitude: 10.0",
    "Latitude: 38.72",  # no longitude
    "Longitude: -9.14",
    "",
    "   ",
    "Somewhere in Portugal.",
    "Latitude: 9.14 W\nLongitude: 38.72 N",  # hemisphere letters contradict the labels
    "38.72 N, 9.14 N",  # two latitudes
    "-38.72 N, 9.14 W",  # sign contradicts the letter
    "38°75'N 9°8'W",  # 75 minutes
    "38.5°30'N 9°8'W",  # minutes after fractional degrees
]


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_answers(text):
    assert parse_answer(text) is None


def test_never_swaps_latitude_and_longitude():
    answer = parse_answer("(-9.1395, 38.7167)")  # taken in the order written, even if that is the sea
    assert (answer.lat, answer.lon) == (-9.1395, 38.7167)
    assert parse_answer("(151.2093, -33.8688)") is None  # 151 is no latitude, and it is not swapped


def test_reads_the_final_answer_only():
    think = "<think>Maybe Madrid, Latitude: 40.41 Longitude: -3.70, or Lisbon.</think>"
    answer = parse_answer(wrap("Lisbon, Latitude: 40.41 Longitude: -3.70", render_answer(*LISBON)))
    assert (answer.lat, answer.lon) == LISBON
    answer = parse_answer(think + "\nLatitude: 38.7167\nLongitude: -9.1395")  # no tags: after </think>
    assert (answer.lat, answer.lon) == LISBON
    assert parse_answer(think) is None  # reasoning only
    assert parse_answer("<think>Latitude: 38.7, Longitude: -9.1") is None  # cut off mid-reasoning
    # tags in use: a pair outside the answer block does not count
    assert parse_answer("<think>x</think><answer>Lisbon</answer>\nLatitude: 38.7167\nLongitude: -9.1395") is None
    # several answer blocks: the last one is final
    two = "<answer>Latitude: 40.41\nLongitude: -3.70</answer> no wait <answer>(38.7167, -9.1395)</answer>"
    assert (parse_answer(two).lat, parse_answer(two).lon) == LISBON
    assert parse_answer("<answer>Latitude: 38.7\nLongitude: -9.1") is None  # answer block never closed


def test_bounded_work_on_runaway_text():
    assert parse_answer("x" * 1_000_000 + "(38.7167, -9.1395)") is None
    assert answer_text("a" * (MAX_COMPLETION_CHARS + 1)) is None
    many_tags = "<answer>" * 10_000 + "(38.7, -9.1)</answer>"  # quadratic for a lazy regex: refused up front
    assert len(many_tags) < MAX_COMPLETION_CHARS and parse_answer(many_tags) is None
    assert parse_answer("<answer>x</answer>" + "<think>" * 10_000 + "<answer>(38.7, -9.1)</answer>") is None
    long_answer = "<answer>" + "1.5, " * (MAX_ANSWER_CHARS // 4) + "</answer>"
    assert parse_answer(long_answer) is None
    digits = "<answer>Latitude: " + "9" * 3000 + "\nLongitude: 1</answer>"
    assert parse_answer(digits) is None


@pytest.mark.parametrize(
    "body",
    ["Latitude:" + " " * 4000 + "x 1", "lat/lon:" + " " * 2000 + "1 " + " " * 2000, "38.5 N," + " " * 4000 + "x1",
     "(1, " * 1000, "Latitude: 38.72, " * 200, "38°" + "1'" * 2000, "1" * 4000],
)
def test_hostile_answers_are_refused(body):
    """Padding and repetition that make backtracking patterns slow (timed in bench/rewards.py)."""
    assert parse_answer(f"<answer>{body}</answer>") is None


def test_non_text_is_no_answer():
    assert parse_answer(None) is None
    assert parse_answer(38.7) is None


def test_prompted_format_reads_the_same_through_the_general_scan():
    """The fast path for the prompted format must agree with the scan that handles every other form."""
    rng = random.Random(5)
    names = ["Portugal", "Côte d'Ivoire", "Cocos (Keeling) Islands", "Vinnyts'ka", "São Paulo", None,
             "Provence-Alpes-Côte d'Azur", "New York City"]
    for _ in range(300):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        body = render_answer(lat, lon, rng.choice(names), rng.choice(names), rng.choice(names))
        fast = parse_answer(wrap("x", body))
        assert fast == _parse_general(body)
        assert (fast.lat, fast.lon) == (round(lat, 4) + 0.0, round(lon, 4) + 0.0)


def test_returns_finite_values():
    answer = parse_answer("Latitude: -0.0\nLongitude: 0")
    assert math.isfinite(answer.lat) and math.isfinite(answer.lon)


def test_flat_json_reads_the_same_through_the_general_scan():
    """JSON answers are read by the JSON parser when they are flat objects of coordinate and name keys; every
    variant, accepted or refused, must give what the general scan gives."""
    from open_r1.answer.parse import _NOT_FLAT, _parse_flat_json

    rng = random.Random(11)
    keys = ["lat", "Latitude", "lon", "lng", "LONG", "longitude", "country", "region", "State", "province", "city",
            "town", "confidence"]
    numbers = [38.7167, -9.1395, 0, -0.0, 91, 1e400, 10**400]
    names = ["Portugal", "Côte d'Ivoire", " São Paulo ", "", " ", "N"]
    odd = ["38.7", True, None, float("nan"), "Route 66", "x" * 81, [38.7, -9.1], {"lat": 1}]
    flat = 0
    for _ in range(3000):
        fields = rng.sample(keys, rng.randint(0, 4)) + rng.sample(["lat", "lon", "Lat"], rng.randint(0, 3))
        items = []
        for key in fields:
            kind = numbers if key.lower() in ("lat", "latitude", "lon", "lng", "long", "longitude") else names
            value = rng.choice(odd if rng.random() < 0.1 else kind)
            items.append(f'"{key}":{rng.choice(["", " ", " ", chr(10)])}' + _json_value(value))
        body = rng.choice(["", " ", "\n"]) + "{" + rng.choice([", ", ",\n  "]).join(items) + "}"
        fast = _parse_flat_json(body)
        flat += fast is not _NOT_FLAT
        assert fast is _NOT_FLAT or fast == _parse_general(body), body
        assert parse_answer(wrap("x", body)) == _parse_general(body), body
    assert flat > 150  # the fast path is taken, not always handed back


def _json_value(value) -> str:
    import json

    if isinstance(value, float) and math.isinf(value):
        return "1e400"
    return json.dumps(value, ensure_ascii=False)
