"""Install or remove a wrapper of one method on module instances, the way TRL binds its fused LM head.

The wrapper is an instance attribute bound with `types.MethodType`, so the class, the state dict, PEFT and
DeepSpeed see the same modules, and a deep copy of a module (TRL's reference model) runs the wrapper with its
own weights. A marker attribute holds (the instance method set before ours, or None; our counters), so removing
the wrapper restores exactly what was there.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Iterable
from typing import TypeVar

from torch import nn

logger = logging.getLogger(__name__)
Stats = TypeVar("Stats")


def wrap_method(
    modules: Iterable[nn.Module],
    name: str,
    wrapper: Callable,
    marker: str,
    new_stats: Callable[[], Stats],
    enabled: bool,
    message: str,
) -> list[Stats]:
    """Bind `wrapper` as method `name` of every module (`enabled`), or remove it; return the installed wrappers'
    counters (`new_stats()` once per module, kept across calls). `message` is logged with the module's class."""
    stats = []
    for module in modules:
        installed = module.__dict__.get(marker)
        if enabled:
            if installed is None:
                installed = (module.__dict__.get(name), new_stats())  # an instance method set before ours, if any
                module.__dict__[marker] = installed
                setattr(module, name, types.MethodType(wrapper, module))
                logger.info("%s %s", type(module).__name__, message)
            stats.append(installed[1])
        elif installed is not None:
            before, _ = installed
            del module.__dict__[marker]
            if before is None:
                delattr(module, name)
            else:
                setattr(module, name, before)
    return stats
