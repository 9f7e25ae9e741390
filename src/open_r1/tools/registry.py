"""Tools by name, so `--tools zoom lookup` picks them and `--tool_module my_tools.py` adds a user's own.

Two kinds, because TRL gives them context in two ways (see `open_r1.tools.zoom`): plain functions that need
nothing but their arguments (`lookup`, and every tool of a user's file) go to `GRPOTrainer(tools=...)`; tools
that need the episode's photo are methods of the `PhotoTools` environment, which TRL makes per rollout and
resets with the rollout's row (`environment_factory=...`). `ToolSet` holds a run's choice of both and binds
them to one row for evaluation and `predict`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from open_r1.errors import ArgumentError, InputError
from open_r1.tools.lookup import lookup
from open_r1.tools.zoom import PhotoTools

__all__ = ["PHOTO_TOOLS", "TOOLS", "ToolModuleError", "ToolSet", "build_toolset", "load_tool_module"]

logger = logging.getLogger(__name__)

TOOLS: dict[str, Callable[..., Any]] = {"lookup": lookup}  # plain functions, by name
PHOTO_TOOLS = ("zoom",)  # methods of PhotoTools, bound to the episode's photo


class ToolModuleError(InputError, ImportError):
    """A --tool_module file that cannot be imported or holds no usable tool; the message names the file."""


def _check_tool(name: str, func: Callable) -> None:
    """TRL builds a tool's schema from its type hints and docstring; check that now, not at the first step."""
    from transformers.utils import get_json_schema

    try:
        get_json_schema(func)
    except Exception as err:
        raise TypeError(f"tool {name!r} needs type hints and a Google-style docstring with an Args: section for "
                        f"every argument, as TRL reads them ({err})") from None


def load_tool_module(path: str) -> list[str]:
    """Import a user's .py file and register its public functions (its `__all__`, else every function defined
    there without a leading underscore) as tools under their own names. Returns the names registered."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ArgumentError(f"tool module {path} does not exist")
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
    module_name = f"open_r1_user_tools_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ToolModuleError(f"cannot import tool module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise ToolModuleError(f"tool module {path}: {type(err).__name__}: {err}") from err
    explicit = getattr(module, "__all__", None)
    if explicit is not None:
        candidates = [(name, getattr(module, name)) for name in explicit]
    else:
        candidates = [(name, obj) for name, obj in vars(module).items()
                      if inspect.isfunction(obj) and obj.__module__ == module_name and not name.startswith("_")]
    if not candidates:
        raise ToolModuleError(f"tool module {path} defines no public function")
    for name, func in candidates:
        if name in PHOTO_TOOLS or (name in TOOLS and TOOLS[name].__module__ != module_name):
            raise ToolModuleError(f"tool module {path}: {name!r} is already a geo-r tool; choose another name")
        _check_tool(name, func)
        TOOLS[name] = func
    logger.info("registered tools %s from %s", [n for n, _ in candidates], path)
    return [name for name, _ in candidates]


@dataclass
class ToolSet:
    """The tools of a run: plain functions, and the photo tools' environment factory (None without them)."""

    names: tuple[str, ...]
    functions: list[Callable[..., Any]] = field(default_factory=list)
    photo_tools: tuple[str, ...] = ()
    max_pixels: int = 401408

    @property
    def environment_factory(self) -> Callable[[], PhotoTools] | None:
        """What `GRPOTrainer(environment_factory=...)` takes: a new `PhotoTools` per rollout."""
        return functools.partial(PhotoTools, max_pixels=self.max_pixels) if self.photo_tools else None

    def schemas(self) -> list[Callable[..., Any]]:
        """Every tool as a callable, in the order the prompt lists them (for `apply_chat_template(tools=...)`)."""
        environment = PhotoTools(self.max_pixels)
        return [*self.functions, *(getattr(environment, name) for name in self.photo_tools)]

    def bind(self, row: Mapping[str, Any]) -> dict[str, Callable[..., Any]]:
        """Name -> callable for one row's episode, exactly as TRL binds them in training."""
        tools = {func.__name__: func for func in self.functions}
        if self.photo_tools:
            environment = PhotoTools(self.max_pixels)
            environment.reset(**row)
            tools.update({name: getattr(environment, name) for name in self.photo_tools})
        return tools


def build_toolset(names: Sequence[str], max_pixels: int = 401408) -> ToolSet:
    """The tools named, ready to give the trainer or the evaluation.

    Args:
        names: Tool names: `zoom`, `lookup`, or a --tool_module's; an unknown name is an error listing the known.
        max_pixels: The size bound of the images a tool returns (a zoom's crop), as the recipe's max_pixels.

    Returns:
        The tool set.
    """
    unknown = [n for n in names if n not in TOOLS and n not in PHOTO_TOOLS]
    if unknown:
        known = ", ".join(sorted([*TOOLS, *PHOTO_TOOLS]))
        raise ArgumentError(f"unknown tool(s) {unknown}; known tools: {known} (or add yours with --tool_module)")
    if len(set(names)) != len(names):
        raise ArgumentError(f"--tools names a tool twice: {list(names)}")
    return ToolSet(
        names=tuple(names),
        functions=[TOOLS[n] for n in names if n in TOOLS],
        photo_tools=tuple(n for n in names if n in PHOTO_TOOLS),
        max_pixels=max_pixels,
    )
