"""Figures a bench has recorded, one JSON line per finished run, kept in the repository (`bench/results/`): a
long table grows over several sittings, reruns skip what is recorded, and the README's tables are these files'."""

from __future__ import annotations

import json
import time
from pathlib import Path


def read_recorded(path: Path, key: tuple[str, ...]) -> dict[tuple, dict]:
    """The recorded entries by their `key` fields; a later line for the same key wins."""
    found: dict[tuple, dict] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                    found[tuple(entry[k] for k in key)] = entry
                except (json.JSONDecodeError, KeyError) as err:
                    raise SystemExit(f"{path}:{number}: not a recorded entry with fields {key}: {err}") from None
    return found


def record(path: Path, entry: dict) -> None:
    """Append one finished run's entry, dated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**entry, "date": time.strftime("%Y-%m-%d")}) + "\n")
