"""Reward functions by name, so the command line (`--reward_funcs format haversine`) and users' own files
(`--reward_module my_rewards.py`) pick rewards without code changes.

A reward has TRL's signature `fn(prompts, completions, **kwargs) -> list[float | None]`; its settings are
keyword-only parameters, filled by `build_reward_funcs` from the options of the same names.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["REWARDS", "BoundReward", "build_reward_funcs", "load_reward_module", "register", "reward_options"]

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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a reward runs. Rewards make tens of thousands of small,
    acyclic objects a step (parsed answers, matches); each few hundred would otherwise trigger a collection
    that walks the trainer's whole heap (about a sixth of the geo suite's time on a 65,536-completion step).
    Reference counting still frees everything; the deferred collection runs once afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class BoundReward:
    """A registered reward with its settings filled in. A plain class (not a closure) so it pickles, and its
    `__name__` is the registered name, which TRL logs as `rewards/<name>/mean`."""

    def __init__(self, name: str, func: RewardFunc, options: Mapping[str, Any]):
        self.__name__ = self.__qualname__ = name
        self.__doc__ = func.__doc__
        self.func = func
        self.options = dict(options)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list:
        with _collector_paused():
            return self.func(prompts, completions, **{**kwargs, **self.options})

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"<reward {self.__name__}({settings})>"


def build_reward_funcs(names: list[str], options: Mapping[str, Any] | None = None) -> list[BoundReward]:
    """The rewards named, each bound to the entries of `options` its signature declares (others ignored)."""
    options = options or {}
    funcs = []
    for name in names:
        if name not in REWARDS:
            known = ", ".join(sorted(REWARDS))
            raise ValueError(
                f"unknown reward {name!r}; registered rewards: {known} (or add yours with --reward_module)"
            )
        func = REWARDS[name]
        bound = {key: options[key] for key in reward_options(func) if key in options}
        funcs.append(BoundReward(name, func, bound))
    return funcs


def _looks_like_reward(func: Callable) -> bool:
    try:
        _check_signature(func.__name__, func)
    except TypeError:
        return False
    return True


def load_reward_module(path: str) -> list[str]:
    """Import a user's .py file and register its public reward functions under their own names.

    Public means listed in the file's `__all__` when it has one (each must be a reward), else every function
    defined in the file whose name has no leading underscore and that has the reward signature. Functions the
    file registers itself with `@register` keep that name. Loading a file again replaces its rewards.
    Returns the names registered.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reward module {path} does not exist")
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
    spec.loader.exec_module(module)
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
