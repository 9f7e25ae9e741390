"""How every entry point starts and ends: its flags parsed (`parse`), and a problem with the user's input read at
the end, as one line `error: <where: what and how to fix>` on stderr with exit status 2 and no traceback
(`run_main`). `--debug` on the command line, or GEO_R_DEBUG=1 in the environment, brings the traceback back.

Under torchrun every rank that meets the error prints the line; the launchers (run_scripts/common.sh) repeat
the first one after torchrun's own report, so it is the last thing on the screen.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from open_r1.errors import ArgumentError, InputError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "GEO_R_DEBUG"
T = TypeVar("T")


def debugging() -> bool:
    """Whether errors keep their traceback (--debug given, or GEO_R_DEBUG set to anything but 0)."""
    return DEBUG_FLAG in sys.argv[1:] or os.environ.get(DEBUG_ENV, "0") not in ("", "0")


def fail(err: InputError) -> int:
    """Print `error: <err>` as one line on stderr and return the exit status 2; with `debugging()`, raise `err`
    again (call it from the `except` block that caught it)."""
    if debugging():
        raise err
    sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
    sys.stderr.flush()
    return 2


def run_main(body: Callable[[], T]) -> T:
    """Run an entry point's `body` (parsing included) and return its result; an `InputError` ends the process
    through `fail` (exit status 2). `--debug` is taken off the command line first (it is no dataclass's flag)."""
    if DEBUG_FLAG in sys.argv[1:]:
        sys.argv[1:] = [a for a in sys.argv[1:] if a != DEBUG_FLAG]
        os.environ[DEBUG_ENV] = "1"  # also for the processes it starts
    try:
        return body()
    except InputError as err:
        sys.exit(fail(err))


def parse(parser: Any, args: list[str] | None = None) -> tuple:
    """The dataclasses of a `TrlParser` from the command line and its `--config` recipe. A flag or recipe key that
    none of them declares, a value they refuse, or an unreadable recipe is an `ArgumentError` naming it."""
    prog = Path(sys.argv[0]).stem if args is None else "this entry"
    try:
        *parsed, from_recipe, from_flags = parser.parse_args_and_config(
            args=args, return_remaining_strings=True, separate_remaining_strings=True)
    except InputError:
        raise
    except (ValueError, OSError) as err:  # TRL's and transformers' own checks of their configs; a missing recipe
        raise ArgumentError(str(err)) from err
    if from_flags:
        raise ArgumentError(f"{' '.join(from_flags)}: not a flag of {prog} (--help lists its flags)")
    if from_recipe:
        keys = [s[2:] for s in from_recipe if s.startswith("--")]
        raise ArgumentError(f"--config: {', '.join(keys)}: not a setting of {prog} (--help lists its flags)")
    return tuple(parsed)
