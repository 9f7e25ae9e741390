"""The errors a user fixes in what they gave (a flag, a recipe, a data file, a model folder). An entry point ends
on one with a single line `error: <message>` and exit status 2, no traceback (`open_r1.cli.run_main`); their
messages say where (`file:line: field:` for data, `--flag` for arguments) and how to fix it. A leaf: any module
may raise them."""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input, its message naming where it is and how to fix it."""


class ArgumentError(InputError):
    """A flag or recipe value an entry point cannot run with."""
