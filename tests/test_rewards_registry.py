"""The reward registry: names, option binding, users' reward files, and the command-line options."""

import pickle

import pytest

from open_r1.configs import RewardArguments
from open_r1.errors import ArgumentError
from open_r1.rewards import REWARDS, build_reward_funcs, load_reward_module, register
from open_r1.rewards.registry import RewardFaultError, RewardModuleError, reward_options

GEO = ["format", "haversine", "hierarchy", "geohash", "geoguessr", "georpiecewise", "within_km"]
GENERIC = ["accuracy", "iou"]
LISBON_ANSWER = "<answer>Latitude: 38.7167\nLongitude: -9.1395</answer>"


def test_every_reward_is_registered_with_trl_signature():
    assert set(GEO + GENERIC) <= set(REWARDS)
    for name, func in REWARDS.items():
        out = func(["prompt"], [LISBON_ANSWER], lat=[40.4], lon=[-3.7], solution=["x"], trainer_state=None)
        assert isinstance(out, list) and len(out) == 1, name
        assert out[0] is None or isinstance(out[0], float), name


def test_build_binds_declared_options_only():
    wide, narrow = build_reward_funcs(["haversine", "haversine"], {"tau_start": 5000.0, "tau_schedule": "constant",
                                                                  "unrelated": 1})
    assert wide.options == {"tau_start": 5000.0, "tau_schedule": "constant"}
    kwargs = dict(lat=[40.4168], lon=[-3.7038], trainer_state=None)  # Lisbon -> Madrid, about 500 km
    (default,) = build_reward_funcs(["haversine"], {})
    assert wide(None, [LISBON_ANSWER], **kwargs)[0] > default(None, [LISBON_ANSWER], **kwargs)[0]
    (penalised,) = build_reward_funcs(["format"], {"format_penalty": -1.0, "tau_start": 1.0})
    assert penalised.options == {"format_penalty": -1.0}
    assert penalised(None, ["no answer"])[0] == -1.0


def test_bound_rewards_keep_their_name_and_pickle():
    funcs = build_reward_funcs(GEO, vars(RewardArguments()))
    assert [f.__name__ for f in funcs] == GEO  # TRL logs each as rewards/<__name__>/mean
    clone = pickle.loads(pickle.dumps(funcs[1]))
    assert clone.__name__ == "haversine" and clone.options == funcs[1].options


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        build_reward_funcs(["format", "haversin"], {})
    assert "haversin" in str(err.value) and "haversine" in str(err.value) and "geohash" in str(err.value)


def test_register_rejects_bad_signatures_and_duplicates():
    with pytest.raises(TypeError):
        register("no_kwargs")(lambda prompts, completions: [])
    with pytest.raises(ValueError):
        register("format")(lambda prompts, completions, **kwargs: [])
    assert "no_kwargs" not in REWARDS


def test_options_are_the_keyword_only_parameters():
    assert reward_options(REWARDS["haversine"]) == {"tau_start": 2000.0, "tau_end": 25.0, "tau_schedule": "exponential"}
    assert reward_options(REWARDS["hierarchy"]) == {"country_weight": 0.5, "region_weight": 0.3, "city_weight": 0.2}


def test_every_reward_option_is_a_command_line_field():
    fields = vars(RewardArguments())
    for name in GEO + GENERIC:
        for option, default in reward_options(REWARDS[name]).items():
            # a reward's sequence default is a tuple (no mutable default), the command line's a list
            default = list(default) if isinstance(default, tuple) else default
            assert option in fields and fields[option] == default, (name, option)


def test_load_reward_module(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def length_bonus(prompts, completions, *, scale: float = 1.0, **kwargs):\n"
        "    return [scale * len(c) for c in completions]\n\n"
        "def _private(prompts, completions, **kwargs):\n"
        "    return [0.0] * len(completions)\n\n"
        "def helper(x):\n"
        "    return x\n"
    )
    try:
        assert load_reward_module(str(path)) == ["length_bonus"]
        assert "_private" not in REWARDS and "helper" not in REWARDS
        (func,) = build_reward_funcs(["length_bonus"], {"scale": 2.0, "tau_start": 9.0})
        assert func.__name__ == "length_bonus"
        assert func(None, ["abc", "de"], trainer_state=None) == [6.0, 4.0]
        assert load_reward_module(str(path)) == ["length_bonus"]  # loading the same file again is fine
    finally:
        REWARDS.pop("length_bonus", None)


def test_load_reward_module_keeps_names_given_with_register(tmp_path):
    path = tmp_path / "named.py"
    path.write_text(
        "from open_r1.rewards import register\n\n"
        "@register('always_one')\n"
        "def one(prompts, completions, **kwargs):\n"
        "    return [1.0] * len(completions)\n"
    )
    try:
        assert load_reward_module(str(path)) == ["always_one"]
        assert load_reward_module(str(path)) == ["always_one"]  # reloading replaces, no clash with itself
        assert "one" not in REWARDS
        assert build_reward_funcs(["always_one"], {})[0](None, ["a", "b"]) == [1.0, 1.0]
    finally:
        REWARDS.pop("always_one", None)


def test_load_reward_module_honours_all_and_refuses_clashes(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text("__all__ = ['format']\ndef format(prompts, completions, **kwargs):\n    return []\n")
    with pytest.raises(ValueError, match="already registered"):
        load_reward_module(str(path))
    with pytest.raises(ArgumentError, match="missing.py does not exist"):
        load_reward_module(str(tmp_path / "missing.py"))


def test_command_line_parsing():
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(RewardArguments).parse_args_into_dataclasses(
        ["--reward_funcs", "format", "haversine", "hierarchy", "--tau_start", "3000", "--tau_schedule", "cosine",
         "--geohash_precision", "5", "--reward_module", "x.py"]
    )
    assert args.reward_funcs == ["format", "haversine", "hierarchy"]
    assert (args.tau_start, args.tau_schedule, args.geohash_precision) == (3000.0, "cosine", 5)
    assert args.reward_module == "x.py"
    (defaults,) = HfArgumentParser(RewardArguments).parse_args_into_dataclasses([])
    assert defaults.reward_funcs == ["format", "haversine"] and defaults.reward_module is None
    with pytest.raises(SystemExit):
        HfArgumentParser(RewardArguments).parse_args_into_dataclasses(["--tau_schedule", "sawtooth"])


@pytest.mark.parametrize("bad", [{"tau_schedule": "sawtooth"}, {"tau_end": 0.0}, {"geohash_precision": 13},
                                 {"city_weight": -1.0}, {"km_thresholds": []}, {"km_thresholds": [25.0, 0.0]}])
def test_invalid_options_fail_early(bad):
    with pytest.raises(ValueError):
        RewardArguments(**bad)


def faulty(name, func, errors="skip"):
    register(name, replace=True)(func)
    try:
        (bound,) = build_reward_funcs([name], {"reward_errors": errors})
    finally:
        REWARDS.pop(name, None)
    return bound


def test_a_failing_reward_gives_none_for_those_completions_and_counts_them(caplog):
    """By default a reward that raises, returns NaN/inf, a non-number or the wrong number of values gives None
    (TRL's "no value") where it failed, logs rewards/<name>/errors through TRL's log_metric hook on every call,
    and prints its first failure with the traceback once."""
    calls = iter(["raise", "nan", "short", "fine", "raise"])

    def shaky(prompts, completions, **kwargs):
        what = next(calls)
        if what == "raise":
            return 1 / 0
        if what == "nan":
            return [1.0, float("nan"), float("inf"), "x", None]
        if what == "short":
            return [1.0]
        return [0.5] * len(completions)

    bound = faulty("shaky", shaky)
    assert bound.__name__ == "shaky" and bound.errors == "skip"
    logged = []
    log = lambda name, value: logged.append((name, value))  # noqa: E731
    completions = ["a", "b", "c", "d", "e"]
    with caplog.at_level("ERROR"):
        assert bound(None, completions, log_metric=log) == [None] * 5
        assert bound(None, completions, log_metric=log) == [1.0, None, None, None, None]  # None is no failure
        assert bound(None, completions, log_metric=log) == [None] * 5
        assert bound(None, completions, log_metric=log) == [0.5] * 5
        assert bound(None, completions, log_metric=log) == [None] * 5
    assert logged == [("rewards/shaky/errors", v) for v in (5.0, 3.0, 5.0, 0.0, 5.0)]
    assert caplog.text.count("ZeroDivisionError") == 1 and "Traceback" in caplog.text  # the first one, once
    assert bound.faults.total == 18 and bound.faults.take() == (5, 18) and bound.faults.take() == (0, 0)
    assert "ZeroDivisionError" in bound.faults.first and "ZeroDivisionError" in bound.faults.last


@pytest.mark.parametrize("output", ["raise", [float("nan"), 1.0], [1.0], None])
def test_reward_errors_raise_fails_fast(output):
    def broken(prompts, completions, **kwargs):
        if output == "raise":
            raise KeyError("lat")
        return output

    bound = faulty("broken", broken, errors="raise")
    with pytest.raises(RewardFaultError, match="reward 'broken'"):
        bound(None, ["a", "b"])


def test_reward_errors_option_is_checked():
    with pytest.raises(ValueError, match="reward_errors"):
        RewardArguments(reward_errors="ignore")
    with pytest.raises(ValueError, match="reward_max_failing_steps"):
        RewardArguments(reward_max_failing_steps=-1)
    defaults = RewardArguments()
    assert (defaults.reward_errors, defaults.reward_max_failing_steps) == ("skip", 10)


@pytest.mark.parametrize(
    "source, line, error",
    [
        ("import math\n\nimport no_such_module_for_geo_r\n", 3, "ModuleNotFoundError"),
        ("def ok(prompts, completions, **kwargs):\n    return [1.0 for c in completions\n", 2, "SyntaxError"),
        ("X = 1\nY = {}['missing']\n", 2, "KeyError"),
    ],
)
def test_a_reward_module_that_does_not_import_names_its_file_and_line(tmp_path, source, line, error):
    path = tmp_path / "user_rewards.py"
    path.write_text(source)
    with pytest.raises(RewardModuleError) as err:
        load_reward_module(str(path))
    assert f"{path}, line {line}: {error}" in str(err.value)
