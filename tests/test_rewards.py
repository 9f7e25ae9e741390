"""Behaviour of the rewards: what they pay for, what they refuse to pay for, and what they report."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from open_r1.answer import render_answer, wrap
from open_r1.geo import haversine_km
from open_r1.rewards import REWARDS, build_reward_funcs, completion_text
from open_r1.rewards import batch as batch_module
from open_r1.rewards.format import format_parts

LISBON = (38.7167, -9.1395)
MADRID = (40.4168, -3.7038)
CHAIN = "The scene points to Europe. The country is Portugal, the region Lisbon, the city Lisbon."
GOOD = wrap(CHAIN, render_answer(*LISBON, "Portugal", "Lisbon", "Lisbon"))


def state(step, total):
    return SimpleNamespace(global_step=step, max_steps=total)


def run(name, completions, options=None, **columns):
    (func,) = build_reward_funcs([name], options or {})
    columns.setdefault("trainer_state", state(0, 100))
    return func([None] * len(completions), list(completions), **columns)


def labels(n, lat=LISBON[0], lon=LISBON[1], **extra):
    return dict(lat=[lat] * n, lon=[lon] * n, **{k: [v] * n for k, v in extra.items()})


# --- format ------------------------------------------------------------------------------------------------

def test_format_pays_each_part():
    coordinates_only = render_answer(*LISBON)
    tagged = wrap("It looks European.", coordinates_only)
    named = wrap("It looks European.", render_answer(*LISBON, "Portugal", "Lisbon", "Lisbon"))
    scores = run("format", ["no idea", coordinates_only, tagged, named, GOOD], **labels(5))
    assert scores[0] == pytest.approx(-0.1)
    assert scores[0] < scores[1] < scores[2] <= scores[3] < scores[4] == pytest.approx(1.0)
    assert format_parts(GOOD) == (True, True, True, 1.0)


ANSWER = "<answer>Latitude: 1.5\nLongitude: 2.5</answer>"


@pytest.mark.parametrize(
    "text, think, answer",
    [
        ("<think>why</think>\n" + ANSWER, True, True),
        ("<think>  </think>" + ANSWER, False, True),  # empty reasoning
        ("Sure! <think>why</think>" + ANSWER, False, True),  # text before the reasoning
        ("<think>why</think> so: " + ANSWER, True, False),  # text between the blocks
        ("<think>why</think>" + ANSWER + " done", True, False),  # text after the answer
        (ANSWER + "<think>why</think>", False, False),  # blocks in the wrong order
        ("<think>a</think><think>b</think>" + ANSWER, False, True),  # two reasoning blocks
        ("<think>why</think>" + ANSWER + ANSWER, True, False),  # two answer blocks
        ("<think>why" + ANSWER, False, True),  # reasoning never closed
    ],
)
def test_format_structure(text, think, answer):
    parts = format_parts(text)
    assert (parts.think, parts.answer) == (think, answer)


def test_format_chain_must_follow_the_answer_in_order():
    backwards = wrap("The city is Lisbon, in the region Lisbon, so the country is Portugal.",
                     render_answer(*LISBON, "Portugal", "Lisbon", "Lisbon"))
    assert 0 < format_parts(backwards).chain < 1
    other = wrap("The country is Spain.", render_answer(*LISBON, "Portugal"))
    assert format_parts(other).chain == 0


def test_format_penalties_and_structure():
    answer_outside = "<think>Portugal.</think><answer>Lisbon</answer>\nLatitude: 38.7167\nLongitude: -9.1395"
    think_only = "<think>Portugal, Latitude: 38.7167, Longitude: -9.1395</think>"
    trailing = GOOD + "\nAlso maybe Spain."
    nan = wrap(CHAIN, "Latitude: nan\nLongitude: nan")
    out = run("format", [answer_outside, think_only, trailing, nan], {"format_penalty": -0.5}, **labels(4))
    assert out[:2] == [-0.5, -0.5] and out[3] == -0.5
    assert out[2] == pytest.approx(0.8)  # the answer block no longer ends the completion


def test_format_grades_non_geo_rows_on_structure_only():
    clevr = "<think>Count the cubes.</think>\n<answer>3</answer>"
    out = run("format", [clevr, "3", GOOD], lat=[None, None, LISBON[0]], lon=[None, None, LISBON[1]])
    assert out == [pytest.approx(1.0), 0.0, pytest.approx(1.0)]


def test_format_one_letter_country_earns_no_chain():
    hack = wrap("a a a Lisbon", render_answer(*LISBON, "a", None, None))
    assert format_parts(hack).chain == 0


# --- distance rewards --------------------------------------------------------------------------------------

def test_haversine_follows_the_annealed_scale():
    madrid = wrap(CHAIN, render_answer(*MADRID))
    km = haversine_km(*MADRID, *LISBON)
    start = run("haversine", [madrid, GOOD], trainer_state=state(0, 100), **labels(2))
    end = run("haversine", [madrid, GOOD], trainer_state=state(100, 100), **labels(2))
    assert start[0] == pytest.approx(math.exp(-km / 2000.0))
    assert end[0] == pytest.approx(math.exp(-km / 25.0))
    assert start[1] == end[1] == pytest.approx(1.0)
    middle = run("haversine", [madrid], {"tau_schedule": "linear"}, trainer_state=state(50, 100), **labels(1))
    assert middle[0] == pytest.approx(math.exp(-km / 1012.5))


def test_haversine_without_known_length_uses_the_start_scale():
    madrid = wrap(CHAIN, render_answer(*MADRID))
    km = haversine_km(*MADRID, *LISBON)
    for trainer_state in (None, state(10, 0), state(10, None)):
        assert run("haversine", [madrid], trainer_state=trainer_state, **labels(1))[0] == \
            pytest.approx(math.exp(-km / 2000.0))


@pytest.mark.parametrize("name", ["haversine", "geoguessr", "georpiecewise", "geohash", "hierarchy", "within_km"])
def test_unlabelled_rows_get_none_and_bad_answers_zero(name):
    out = run(name, [GOOD, GOOD, "nothing", GOOD], lat=[None, "abc", LISBON[0], 95.0],
              lon=[None, 1.0, LISBON[1], 0.0])
    assert out == [None, None, 0.0, None]


def test_geoguessr_and_piecewise_curves():
    madrid = wrap(CHAIN, render_answer(*MADRID))
    km = haversine_km(*MADRID, *LISBON)
    assert run("geoguessr", [GOOD, madrid], **labels(2)) == pytest.approx([1.0, math.exp(-km / 1492.7)])
    piecewise = run("georpiecewise", [GOOD, madrid], **labels(2))
    assert piecewise == pytest.approx([1.0, 1.0 - 0.5 * km / 750.0])
    antipode = wrap(CHAIN, render_answer(-LISBON[0], LISBON[1] + 180.0))
    assert run("georpiecewise", [antipode], **labels(1)) == [0.0]


def test_within_km_pays_the_scales_reached_and_nothing_for_the_digits_inside_the_city():
    madrid = wrap(CHAIN, render_answer(*MADRID))
    same_city = wrap(CHAIN, render_answer(LISBON[0] + 0.05, LISBON[1] + 0.05))  # about 7 km off
    drifted = wrap(CHAIN, render_answer(LISBON[0] + 1.0, LISBON[1]))  # about 111 km off: the digits left the city
    antipode = wrap(CHAIN, render_answer(-LISBON[0], LISBON[1] + 180.0))
    out = run("within_km", [GOOD, same_city, drifted, madrid, antipode, "no answer"], **labels(6))
    # 25 / 200 / 750 / 2500 km: Madrid is about 500 km from Lisbon
    assert out == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]
    km = haversine_km(*MADRID, *LISBON)
    assert run("within_km", [madrid], {"km_thresholds": [km]}, **labels(1)) == [0.0]  # strictly within, as OSV-5M
    assert run("within_km", [madrid], {"km_thresholds": [km + 1.0, 1.0]}, **labels(1)) == [0.5]


def test_geohash_prefix_share():
    near = wrap(CHAIN, render_answer(LISBON[0] + 0.3, LISBON[1] + 0.3))  # tens of km: a few shared cells
    far = wrap(CHAIN, render_answer(-LISBON[0], -LISBON[1]))
    out = run("geohash", [GOOD, near, far], **labels(3))
    assert out[0] == 1.0 and 0 < out[1] < 1 and out[2] == 0.0
    assert run("geohash", [near], {"geohash_precision": 2}, **labels(1)) == [1.0]


# --- hierarchy ---------------------------------------------------------------------------------------------

def test_hierarchy_levels():
    row = labels(5, country="PT", region="Lisbon", city="Lisbon")
    wrong_city = wrap(CHAIN, render_answer(*LISBON, "Portugal", "Lisbon", "Sintra"))
    wrong_country = wrap(CHAIN, render_answer(*MADRID, "Spain", "Madrid", "Madrid"))
    unnamed = wrap(CHAIN, render_answer(38.72, -9.14))  # names from its coordinates
    porto = wrap(CHAIN, render_answer(41.1496, -8.6110, "Portugal", "Porto", "Porto"))
    out = run("hierarchy", [GOOD, wrong_city, wrong_country, unnamed, porto], **row)
    assert out == pytest.approx([1.0, 0.8, 0.0, 1.0, 0.5])


def test_hierarchy_geocodes_missing_truth_labels():
    tokyo = wrap("Japan.", render_answer(35.6895, 139.6917, "Japan", "Tokyo", "Tokyo"))
    out = run("hierarchy", [tokyo, GOOD], lat=[35.6762, 35.6762], lon=[139.6503, 139.6503])
    assert out == pytest.approx([1.0, 0.0])


def test_hierarchy_refuses_names_that_contradict_the_coordinates():
    hedge = wrap(CHAIN, render_answer(*MADRID, "Portugal", "Lisbon", "Lisbon"))  # Portugal named, Spain given
    one_letter = wrap(CHAIN, render_answer(*LISBON, "a", None, None))
    usa = wrap("USA.", render_answer(40.7128, -74.0060, "USA", "New York", "New York City"))
    out = run("hierarchy", [hedge, one_letter], **labels(2, country="Portugal"))
    assert out == [0.0, 0.0]
    assert run("hierarchy", [usa], **labels(1, lat=40.7, lon=-74.0, country="United States")) == [pytest.approx(1.0)]


def test_hierarchy_weights_are_options():
    wrong_city = wrap(CHAIN, render_answer(*LISBON, "Portugal", "Lisbon", "Sintra"))
    out = run("hierarchy", [wrong_city], {"country_weight": 1.0, "region_weight": 0.0, "city_weight": 1.0},
              **labels(1, country="PT", region="Lisbon", city="Lisbon"))
    assert out == [pytest.approx(0.5)]


def test_hierarchy_country_label_without_coordinates():
    out = run("hierarchy", [GOOD, GOOD], lat=[None, None], lon=[None, None], country=["Portugal", None])
    assert out == [pytest.approx(0.5 + 0.0 + 0.0), None]


# --- generic rewards ---------------------------------------------------------------------------------------

def test_accuracy():
    completions = ["<think>count</think><answer> 3 </answer>", "The answer is 3.", "<answer>3 or 4</answer>",
                   "<answer>Yes.</answer>", "<answer>1,000</answer>", "<answer>2</answer>", "<answer>x</answer>"]
    solutions = ["<answer> 3 </answer>", "3", "3", "yes", "1000", "3", None]
    assert run("accuracy", completions, solution=solutions) == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, None]


def test_iou():
    completions = ["<answer>[10, 10, 50, 50]</answer>", "<answer>[30, 10, 70, 50]</answer>",
                   "<answer>[10, 10, 50, 50] [0, 0, 5, 5]</answer>", "<answer>no box</answer>",
                   "<answer>[50, 50, 10, 10]</answer>", "<answer>[1, 1, 2, 2]</answer>"]
    solution = "<answer>[10, 10, 50, 50]</answer>"
    out = run("iou", completions, solution=[solution] * 5 + ["a cat"])
    assert out == [1.0, pytest.approx(20 * 40 / (2 * 1600 - 20 * 40)), 0.0, 0.0, 0.0, None]


# --- robustness, sharing, metrics --------------------------------------------------------------------------

def test_conversational_completions():
    pieces = [{"type": "text", "text": GOOD[:40]}, {"type": "text", "text": GOOD[40:]}]
    parts = [{"role": "assistant", "content": pieces}]
    plain = [{"role": "assistant", "content": GOOD}]
    assert completion_text(parts) == completion_text(plain) == GOOD
    for name in ["format", "haversine", "hierarchy", "geohash"]:
        assert run(name, [parts, plain], **labels(2)) == run(name, [GOOD, GOOD], **labels(2))


BUILT_IN = tuple(REWARDS)  # at collection, before any test registers a user's reward module


def test_hostile_completions_and_rows_never_raise():
    many = "<answer>" + "\n".join(f"({i % 90}.5, {i % 180}.25)" for i in range(500)) + "</answer>"
    huge = "<think>" + "Portugal " * 120_000 + "</think><answer>(38.7, -9.1)</answer>"  # about 1 MB
    junk = [many, huge, None, 42, {"role": "user", "content": "hi"}, [{"content": None}], "\x00" * 10, "", "nan"]
    n = len(junk)
    columns = dict(lat=[LISBON[0]] * n, lon=["-9.1395"] * n, country=[None, 3, "", "PT", None, None, None, None, None],
                   region=[None] * n, city=[None] * n,
                   solution=[None, 1, "<answer>[1,2,3,4]</answer>"] + [None] * (n - 3))
    for name in BUILT_IN:
        out = run(name, junk, **columns)
        assert len(out) == n, name
        if name not in ("format", "accuracy", "iou"):
            assert all(v == 0.0 for v in out), name
    assert run("format", junk, **columns) == pytest.approx([-0.1] * n)


def test_each_completion_is_parsed_once_per_step(monkeypatch):
    seen = []
    real = batch_module.parse_answer
    monkeypatch.setattr(batch_module, "parse_answer", lambda text: seen.append(text) or real(text))
    completions = [wrap(CHAIN, render_answer(LISBON[0] + i / 100, LISBON[1])) for i in range(6)]
    funcs = build_reward_funcs(["format", "haversine", "hierarchy", "geohash", "geoguessr"], {})
    for func in funcs:
        func(None, completions, trainer_state=None, **labels(6))
    assert sorted(seen) == sorted(completions)
    next_step = list(completions)  # the next step brings a new list: parsed again
    for func in funcs:
        func(None, next_step, trainer_state=None, **labels(6))
    assert len(seen) == 12


def test_step_metrics_through_log_metric():
    logged = {}

    def log_metric(name, value):
        assert name not in logged, f"{name} logged twice in one step"
        logged[name] = value

    madrid = wrap(CHAIN, render_answer(*MADRID))
    completions = [GOOD, madrid, "no answer", GOOD]
    columns = dict(lat=[LISBON[0]] * 3 + [None], lon=[LISBON[1]] * 3 + [None], trainer_state=state(50, 100),
                   log_metric=log_metric)
    for func in build_reward_funcs(["format", "haversine", "hierarchy", "geohash", "geoguessr"], {}):
        func(None, completions, **columns)
    km = haversine_km(*MADRID, *LISBON)
    assert logged["geo/parse_rate"] == 0.75
    assert logged["geo/bad_completions"] == 1 and logged["geo/unlabelled_rows"] == 1
    assert logged["geo/distance_km_mean"] == pytest.approx(km / 2)
    assert logged["geo/distance_km_median"] == pytest.approx(km / 2)
    assert logged["geo/within_25km"] == pytest.approx(1 / 3) and logged["geo/within_750km"] == pytest.approx(2 / 3)
    assert logged["geo/tau"] == pytest.approx(math.sqrt(2000.0 * 25.0))
    assert logged["geo/country_accuracy"] == pytest.approx(1 / 3)
    assert all(isinstance(v, float) for v in logged.values())


@pytest.mark.parametrize("names", [["format", "hierarchy"], ["geohash"]])
def test_rewards_that_pay_no_kilometres_still_log_the_distance_figures(names):
    logged = {}
    madrid = wrap(CHAIN, render_answer(*MADRID))
    for func in build_reward_funcs(names, {}):
        func(None, [GOOD, madrid, "no answer"], trainer_state=None, log_metric=logged.__setitem__, **labels(3))
    assert logged["geo/parse_rate"] == pytest.approx(2 / 3)
    assert logged["geo/within_25km"] == pytest.approx(1 / 3)
    assert logged["geo/distance_km_median"] == pytest.approx(haversine_km(*MADRID, *LISBON) / 2)


def test_distance_column_for_the_completions_table():
    columns = {}
    madrid = wrap(CHAIN, render_answer(*MADRID))
    step = [GOOD, madrid, "none"]
    for func in build_reward_funcs(["haversine", "geoguessr"], {}):  # two rewards, one column per step
        func(None, step, log_extra=lambda column, values: columns.setdefault(column, []).extend(values),
             trainer_state=None, **labels(3))
    assert columns["distance_km"] == [0.0, pytest.approx(haversine_km(*MADRID, *LISBON), abs=1e-3), None]


def test_distance_metrics_match_a_numpy_reference():
    rng = np.random.default_rng(0)
    truth = rng.uniform([-60, -180], [60, 180], (50, 2))
    guess = truth + rng.normal(0, 3, (50, 2))
    guess[:, 0] = np.clip(guess[:, 0], -90, 90)
    guess[:, 1] = (guess[:, 1] + 180) % 360 - 180
    logged = {}
    run("haversine", [render_answer(a, b) for a, b in guess], lat=list(truth[:, 0]), lon=list(truth[:, 1]),
        log_metric=logged.__setitem__)
    km = haversine_km(np.round(guess[:, 0], 4), np.round(guess[:, 1], 4), truth[:, 0], truth[:, 1])
    assert logged["geo/distance_km_mean"] == pytest.approx(km.mean())
    assert logged["geo/distance_km_median"] == pytest.approx(np.median(km))
    assert logged["geo/within_750km"] == pytest.approx(np.mean(km <= 750))


def test_chain_share_exact_case_shortcut_agrees_with_a_case_blind_search():
    """The chain is searched with the names as written first; the result must be the case-blind one."""
    import random

    from open_r1.rewards.format import chain_share

    def case_blind(think, names):
        hay, pos, reached = think.casefold(), 0, 0
        for level, name in enumerate(names):
            if not name or (level == 0 and name.strip().casefold() not in ("france", "portugal", "brazil")):
                continue
            needle = name.strip().casefold()
            if level and sum(ch.isalpha() for ch in needle) < 2:
                continue
            i = hay.find(needle, pos)
            while i >= 0:
                j = i + len(needle)
                if (i == 0 or not hay[i - 1].isalnum()) and (j == len(hay) or not hay[j].isalnum()):
                    reached, pos = reached + 1, i
                    break
                i = hay.find(needle, i + 1)
        return reached / 3

    rng = random.Random(3)
    words = ["France", "france", "FRANCE", "Portugal", "Brazil", "Paris", "paris", "Île-de-France", "île-de-france",
             "Parisian", "São Paulo", "SÃO PAULO", "the", "x", ",", " "]
    for _ in range(2000):
        think = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        names = [rng.choice(["France", "Portugal", "Brazil", "Atlantis", None]),
                 rng.choice(["Île-de-France", "São Paulo", "x", None]), rng.choice(["Paris", "São Paulo", None])]
        text = f"<think>{think}</think>"
        assert chain_share(think, *names) == case_blind(think, names), (think, names)
        assert chain_share(text, *names, span=(7, 7 + len(think))) == case_blind(think, names), (think, names)
