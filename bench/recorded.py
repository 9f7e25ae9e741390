"""Figures a bench has recorded, one JSON line per finished run, kept in the repository (`bench/results/`): a
long table grows over several sittings, reruns skip what is recorded, and the README's tables are these files'."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# What the demo benches run: a record made under other settings or data is not a figure of today's recipe.
DEMO_RECIPE = ("data_config/demo.yaml", "data_config/sft_demo.yaml", "data/demo/train.jsonl", "data/demo/grpo.jsonl",
               "data/demo/test.jsonl")


def recipe_fingerprint(paths: tuple[str, ...] = DEMO_RECIPE) -> str:
    """12 hex digits over the recipes' parsed settings and the data files' bytes: comments do not count."""
    digest = hashlib.sha256()
    for name in paths:
        text = (REPO / name).read_text(encoding="utf-8")
        settings = yaml.safe_load(text) if name.endswith((".yaml", ".yml")) else text
        digest.update(name.encode() + json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def read_recorded(path: Path, key: tuple[str, ...], recipe: str | None = None) -> dict[tuple, dict]:
    """The recorded entries by their `key` fields; a later line for the same key wins. With `recipe`, only the
    entries recorded under that recipe fingerprint count (the others are another recipe's figures)."""
    found: dict[tuple, dict] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                    if recipe is not None and entry.get("recipe") != recipe:
                        continue
                    found[tuple(entry[k] for k in key)] = entry
                except (json.JSONDecodeError, KeyError) as err:
                    raise SystemExit(f"{path}:{number}: not a recorded entry with fields {key}: {err}") from None
    return found


def record(path: Path, entry: dict, recipe: str | None = None) -> None:
    """Append one finished run's entry, dated, with the fingerprint of the recipe it ran when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"date": time.strftime("%Y-%m-%d"), **({"recipe": recipe} if recipe else {})}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**entry, **stamp}) + "\n")


def add_recording_arguments(parser: argparse.ArgumentParser, results: Path) -> None:
    """--seeds (fixed before any tuning), --results, --rerun and --table_only, the same for every recording bench."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1234])
    parser.add_argument("--results", type=Path, default=results,
                        help="recorded figures; runs found here are not run again")
    parser.add_argument("--rerun", action="store_true", help="run recorded runs again (and record them anew)")
    parser.add_argument("--table_only", action="store_true", help="print the recorded table and run nothing")


def shortened_run() -> bool:
    """A smoke run (GRPO_STEPS or SFT_STEPS set) neither reads nor records the recipe's figures."""
    return bool(os.environ.get("GRPO_STEPS") or os.environ.get("SFT_STEPS"))


def describe_machine() -> str:
    return (f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
            f"GRPO_STEPS={os.environ.get('GRPO_STEPS', 'recipe')} SFT_STEPS={os.environ.get('SFT_STEPS', 'recipe')}")
