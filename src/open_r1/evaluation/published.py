"""The published-results table (`published_results.csv`, shipped in the package) that runs are compared with.

One row per (benchmark, method): accuracies at 1/25/200/750/2500 km and the other shared metrics, under the
same names as `metrics.json`, each row with its source. Empty cells are numbers the source does not give.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from open_r1.configs import BENCHMARKS
from open_r1.errors import ArgumentError

TABLE = Path(__file__).with_name("published_results.csv")
METRIC_COLUMNS = (
    "acc@1km", "acc@25km", "acc@200km", "acc@750km", "acc@2500km",
    "median_km", "geoguessr", "country_acc", "region_acc", "city_acc",
)
_REQUIRED = ("benchmark", "method", "source", "table", *METRIC_COLUMNS)


class PublishedTableError(ValueError):
    """A problem in the published-results table, located by file, line and column."""


@dataclass(frozen=True)
class PublishedResult:
    benchmark: str
    method: str
    source: str
    table: str
    metrics: dict[str, float] = field(default_factory=dict)


def load_published(path: str | Path = TABLE, benchmark: str | None = None) -> list[PublishedResult]:
    """Rows of the table (only `benchmark`'s when given), validated: known benchmark, numbers, a source."""
    path = Path(path)
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ArgumentError(f"--benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
    with open(path, encoding="utf-8", newline="") as handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise PublishedTableError(f"{path}: no header line")
    reader = csv.DictReader([line for _, line in lines])
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise PublishedTableError(f"{path}:{lines[0][0]}: header lacks column(s) {', '.join(missing)}")
    results = []
    for (number, _), raw in zip(lines[1:], reader):
        where = f"{path}:{number}"
        name = (raw["benchmark"] or "").strip().lower()
        if name not in BENCHMARKS:
            raise PublishedTableError(f"{where}: column 'benchmark': {raw['benchmark']!r} is not one of {BENCHMARKS}")
        if not (raw["method"] or "").strip() or not (raw["source"] or "").strip():
            raise PublishedTableError(f"{where}: columns 'method' and 'source' must both be filled")
        metrics = {}
        for column in METRIC_COLUMNS:
            cell = (raw[column] or "").strip()
            if not cell:
                continue
            try:
                metrics[column] = float(cell)
            except ValueError:
                raise PublishedTableError(f"{where}: column '{column}': not a number: {cell!r}") from None
        if name == benchmark or benchmark is None:
            results.append(PublishedResult(name, raw["method"].strip(), raw["source"].strip(),
                                           (raw["table"] or "").strip(), metrics))
    return results


def guess_benchmark(data_file_paths: str | Sequence[str]) -> str | None:
    """The benchmark a data path names (`data/im2gps3k/test.jsonl` -> 'im2gps3k'), if exactly one."""
    text = " ".join([data_file_paths] if isinstance(data_file_paths, str) else data_file_paths).lower()
    text = re.sub(r"[-_ ]", "", text)
    found = {name for name in BENCHMARKS if name in text}
    return found.pop() if len(found) == 1 else None
