"""Reward functions by name, so the command line (`--reward_funcs format haversine`) and users' own files
(`--reward_module my_rewards.py`) pick rewards without code changes.

A reward has TRL's signature `fn(prompts, completions, **kwargs) -> list[float | None]`; its settings are
keyword-only parameters, filled by `build_reward_funcs` from the options of the same names.

A reward that fails on some completions (raises, returns NaN/inf or the wrong number of values) gives None for
them by default, which TRL reads as "no value from this reward"; each failure is counted in the trainer's logs
as `rewards/<name>/errors` and the first traceback is printed. `errors="raise"` stops at the first one instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from open_r1.configs import REWARD_ERRORS
from open_r1.errors import ArgumentError, InputError

__all__ = [
    "REWARDS",
    "BoundReward",
    "RewardFaultError",
    "RewardFaults",
    "RewardModuleError",
    "build_reward_funcs",
    "load_reward_module",
    "register",
    "reward_options",
]

logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list]
REWARDS: dict[str, RewardFunc] = {}


def _check_signature(name: str, func: Callable) -> inspect.Signature:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as err:
        raise TypeError(f"reward {name!r}: cannot read its signature ({err})") from None
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 or not any(p.kind is p.VAR_KEYWORD for p in params):
        raise TypeError(
            f"reward {name!r} must have TRL's signature fn(prompts, completions, **kwargs) (settings as "
            f"keyword-only parameters), got {name}{sig}"
        )
    return sig


def register(name: str, *, replace: bool = False) -> Callable[[RewardFunc], RewardFunc]:
    """Decorator: make a reward function available under `name` (it is returned unchanged)."""

    def decorator(func: RewardFunc) -> RewardFunc:
        _check_signature(name, func)
        if name in REWARDS and REWARDS[name] is not func and not replace:
            raise ValueError(f"a reward named {name!r} is already registered; choose another name")
        REWARDS[name] = func
        return func

    return decorator


def reward_options(func: RewardFunc) -> dict[str, Any]:
    """The settings a reward declares (its keyword-only parameters) and their defaults."""
    sig = inspect.signature(func)
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


class RewardFaultError(RuntimeError):
    """A reward failed and the run was told not to go on without it."""


class RewardModuleError(InputError, ImportError):
    """A --reward_module file that cannot be imported; the message names its file and line."""


@dataclass
class RewardFaults:
    """One reward's failures in this process: completions it gave no usable value for."""

    total: int = 0  # failed completions since the start
    calls: int = 0  # calls since the last `take()`
    failed: int = 0  # failed completions since the last `take()`
    first: str | None = None  # the first failure: what went wrong, with its traceback
    last: str | None = None  # the latest failure, likewise

    def record(self, failed: int, what: str | None) -> None:
        self.calls += 1
        if failed:
            self.total += failed
            self.failed += failed
            self.last = what
            if self.first is None:
                self.first = what

    def take(self) -> tuple[int, int]:
        """(calls, failed completions) since the last take; the step boundary's tally."""
        tally = (self.calls, self.failed)
        self.calls = self.failed = 0
        return tally


def _checked(values: Any, n: int) -> tuple[list, list[int], str | None]:
    """A reward's output for n completions as (values with None where unusable, failed indices, what failed).
    None is a reward's own "no value" and no failure; NaN, inf and non-numbers are failures."""
    try:
        values = list(values)
    except TypeError:
        return [None] * n, list(range(n)), f"returned {type(values).__name__}, not a list of {n} values"
    if len(values) != n:
        return [None] * n, list(range(n)), f"returned {len(values)} values for {n} completions"
    failed, problems = [], []
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            failed.append(i)
            if len(problems) < 3:
                problems.append(f"{value!r} for completion {i}")
            values[i] = None
    what = f"returned {', '.join(problems)}{' ...' if len(failed) > 3 else ''}" if failed else None
    return values, failed, what


class BoundReward:
    """A registered reward with its settings filled in. A plain class (not a closure) so it pickles, and its
    `__name__` is the registered name, which TRL logs as `rewards/<name>/mean`.

    It also contains the reward's failures (see the module's docstring): with `errors="skip"` the completions a
    call failed on get None, `rewards/<name>/errors` (failed completions of the call, which TRL averages over
    processes and calls like its other metrics) goes to TRL's `log_metric` hook, and `faults` keeps the tally a
    step-boundary check reads (`training.callbacks.RewardFaultCallback` stops a run failing step after step).
    """

    def __init__(self, name: str, func: RewardFunc, options: Mapping[str, Any], errors: str = "skip"):
        if errors not in REWARD_ERRORS:
            raise ValueError(f"errors must be one of {REWARD_ERRORS}, got {errors!r}")
        self.__name__ = self.__qualname__ = name
        self.__doc__ = func.__doc__
        self.func = func
        self.options = dict(options)
        self.errors = errors
        self.faults = RewardFaults()

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list:
        n = len(completions)
        try:
            values = self.func(prompts, completions, **{**kwargs, **self.options})
        except Exception as err:
            if self.errors == "raise":
                raise RewardFaultError(f"reward {self.__name__!r} raised {type(err).__name__}: {err}") from err
            values, failed = [None] * n, list(range(n))
            what = f"raised on {n} completions:\n{traceback.format_exc().rstrip()}"
        else:
            values, failed, what = _checked(values, n)
            if failed and self.errors == "raise":
                raise RewardFaultError(f"reward {self.__name__!r} {what}")
            if what:
                what = f"{what} (of {n} completions)"
        if failed and self.faults.first is None:
            logger.error(
                "reward %r %s\nThose completions get no value from it; from now on its failures are only counted "
                "(rewards/%s/errors in the logs). --reward_errors raise stops at the first one.",
                self.__name__, what, self.__name__,
            )
        self.faults.record(len(failed), what)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"rewards/{self.__name__}/errors", float(len(failed)))
        return values

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"<reward {self.__name__}({settings})>"


def build_reward_funcs(
    names: list[str], options: Mapping[str, Any] | None = None, errors: str | None = None
) -> list[BoundReward]:
    """The rewards named, each bound to the entries of `options` its signature declares (others ignored).
    `errors` ("skip" or "raise", default `options["reward_errors"]`, else "skip"): what a failing reward does."""
    options = options or {}
    errors = errors or options.get("reward_errors") or "skip"
    funcs = []
    for name in names:
        if name not in REWARDS:
            known = ", ".join(sorted(REWARDS))
            raise ArgumentError(
                f"unknown reward {name!r}; registered rewards: {known} (or add yours with --reward_module)"
            )
        func = REWARDS[name]
        bound = {key: options[key] for key in reward_options(func) if key in options}
        funcs.append(BoundReward(name, func, bound, errors))
    return funcs


def _looks_like_reward(func: Callable) -> bool:
    try:
        _check_signature(func.__name__, func)
    except TypeError:
        return False
    return True


def _where(err: BaseException, path: str) -> str:
    """`path, line N`: the line of the reward file the import failed at (for a syntax error, its own line)."""
    if isinstance(err, SyntaxError) and err.filename and os.path.abspath(err.filename) == path and err.lineno:
        return f"{path}, line {err.lineno}"
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if os.path.abspath(frame.filename) == path]
    return f"{path}, line {lines[-1]}" if lines else path


def load_reward_module(path: str) -> list[str]:
    """Import a user's .py file and register its public reward functions under their own names.

    Public means listed in the file's `__all__` when it has one (each must be a reward), else every function
    defined in the file whose name has no leading underscore and that has the reward signature. Functions the
    file registers itself with `@register` keep that name. Loading a file again replaces its rewards.
    Returns the names registered.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ArgumentError(f"reward module {path} does not exist")
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]  # the same name in every process and rank
    module_name = f"open_r1_user_rewards_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import reward module {path}")
    module = importlib.util.module_from_spec(spec)
    for name in [k for k, f in REWARDS.items() if getattr(f, "__module__", None) == module_name]:
        del REWARDS[name]  # loading the same file again replaces what it registered before
    before = set(REWARDS)
    sys.modules[module_name] = module  # lets the rewards pickle by reference
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise RewardModuleError(f"reward module {_where(err, path)}: {type(err).__name__}: {err}") from err
    registered = [name for name in REWARDS if name not in before]  # the file's own @register calls

    explicit = getattr(module, "__all__", None)
    if explicit is not None:
        candidates = [(name, getattr(module, name)) for name in explicit]
    else:
        candidates = [
            (name, obj) for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module_name and not name.startswith("_")
            and _looks_like_reward(obj)
        ]
    already = {id(func) for func in REWARDS.values()}
    for name, func in candidates:
        if id(func) not in already:
            register(name)(func)
            registered.append(name)
    logger.info("registered rewards %s from %s", registered, path)
    return registered
