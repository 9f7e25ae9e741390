"""A finished evaluation, read for browsing: its `predictions.jsonl` as columns (one pass, the completions left on
disk and read back one record at a time by byte offset) and its `metrics.json`, so a run of 100k predictions
opens in seconds and filters in milliseconds. The map draws at most `MAP_LIMIT` pairs (a fixed random sample,
said on the page) and the table is paged.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from open_r1.errors import InputError
from open_r1.evaluation.describe import reasoning_of

PREDICTIONS, METRICS = "predictions.jsonl", "metrics.json"  # as eval_geo writes them (harness.py)
MAP_LIMIT = 1500
PAGE_SIZE = 50
TABLE_COLUMNS = ["id", "true place", "guessed place", "error km", "parsed"]


class RunError(InputError):
    """A run folder the app cannot open, and why."""


def _place_text(place: Mapping[str, Any] | None) -> str:
    if not place:
        return ""
    return ", ".join(str(p) for p in (place.get("city"), place.get("region"), place.get("country")) if p)


@dataclass
class Run:
    """The columns of a run's predictions (one entry per record, in file order) and its metrics."""

    folder: Path
    metrics: dict[str, Any]
    ids: list[str]
    offsets: np.ndarray
    true_lat: np.ndarray
    true_lon: np.ndarray
    pred_lat: np.ndarray  # NaN where no answer parsed
    pred_lon: np.ndarray
    error_km: np.ndarray
    parsed: np.ndarray
    true_country: np.ndarray
    true_place: list[str]
    pred_place: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, country: str | None = None, min_km: float = 0.0, failures_only: bool = False) -> np.ndarray:
        """Indices of the records that pass the filters, largest error first."""
        keep = self.error_km >= (min_km or 0.0)
        if country:
            keep &= self.true_country == country
        if failures_only:
            keep &= ~self.parsed
        chosen = np.flatnonzero(keep)
        return chosen[np.argsort(-self.error_km[chosen], kind="stable")]

    def map_sample(self, chosen: np.ndarray, limit: int = MAP_LIMIT) -> np.ndarray:
        """At most `limit` of `chosen`, a random sample fixed by the run (the same on every redraw)."""
        if len(chosen) <= limit:
            return chosen
        return np.sort(np.random.default_rng(len(self)).choice(chosen, size=limit, replace=False))

    def table_page(self, chosen: np.ndarray, page: int) -> tuple[list[list[Any]], int, int]:
        """(rows, page, pages) of the table at `page` (1-based, clamped)."""
        pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        rows = [[self.ids[i], self.true_place[i], self.pred_place[i] if self.parsed[i] else "(no answer)",
                 round(float(self.error_km[i]), 1), bool(self.parsed[i])]
                for i in chosen[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]]
        return rows, page, pages

    def countries(self) -> list[tuple[str, int]]:
        """(country code, photos) of the truths, most photos first."""
        codes, counts = np.unique(self.true_country[self.true_country != ""], return_counts=True)
        return sorted(zip(codes.tolist(), counts.tolist()), key=lambda item: (-item[1], item[0]))

    def by_country(self, chosen: np.ndarray, limit: int = 15) -> list[list[Any]]:
        """Per true country among `chosen`: photos, median error and parse failures (%), most photos first."""
        codes = self.true_country[chosen]
        rows = []
        for code in np.unique(codes):
            members = chosen[codes == code]
            rows.append([code or "(unknown)", len(members), round(float(np.median(self.error_km[members])), 1),
                         round(100.0 * float(np.mean(~self.parsed[members])), 1)])
        return sorted(rows, key=lambda row: (-row[1], row[0]))[:limit]

    def index_of(self, record_id: str) -> int:
        try:
            return self.ids.index(str(record_id))
        except ValueError:
            raise RunError(f"no record with id {record_id!r} in {self.folder / PREDICTIONS}") from None

    def record(self, index: int) -> dict[str, Any]:
        """The full record at `index`, read back from the file."""
        with open(self.folder / PREDICTIONS, "rb") as handle:
            handle.seek(int(self.offsets[index]))
            return json.loads(handle.readline())


def read_run(folder: str | Path) -> Run:
    """Read a run folder; RunError says what is missing or broken (file and line)."""
    folder = Path(str(folder or "").strip()).expanduser()
    if not str(folder) or not folder.is_dir():
        raise RunError(f"{folder}: no such folder; give an evaluation's --output_dir (it holds {PREDICTIONS})")
    path = folder / PREDICTIONS
    if not path.is_file():
        raise RunError(f"{folder} holds no {PREDICTIONS}: is it an evaluation's --output_dir? "
                       f"python -m open_r1.eval_geo writes one")
    ids, offsets, numbers, countries, true_places, pred_places = [], [], [], [], [], []
    seen: set[str] = set()
    offset = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = str(record["id"])
                fields = (float(record["true_lat"]), float(record["true_lon"]),
                          float("nan") if record.get("pred_lat") is None else float(record["pred_lat"]),
                          float("nan") if record.get("pred_lon") is None else float(record["pred_lon"]),
                          float(record["error_km"]), bool(record.get("parsed")))
            except (ValueError, KeyError, TypeError) as err:
                if not line.endswith(b"\n"):
                    break  # the cut-off last line of a run still being written
                raise RunError(f"{path}:{number}: not a prediction record ({type(err).__name__}: {err})") from None
            if key in seen:
                continue
            seen.add(key)
            ids.append(key)
            offsets.append(start)
            numbers.append(fields)
            true_place = record.get("true_place") or {}
            countries.append(str(true_place.get("country") or ""))
            true_places.append(_place_text(true_place))
            pred_places.append(_place_text(record.get("pred_place")))
    if not ids:
        raise RunError(f"{path} holds no predictions yet")
    metrics_path = folder / METRICS
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except json.JSONDecodeError as err:
        raise RunError(f"{metrics_path}: invalid JSON ({err})") from None
    columns = np.array(numbers, dtype=np.float64).reshape(-1, 6)
    return Run(folder=folder, metrics=metrics, ids=ids, offsets=np.array(offsets, dtype=np.int64),
               true_lat=columns[:, 0], true_lon=columns[:, 1], pred_lat=columns[:, 2], pred_lon=columns[:, 3],
               error_km=columns[:, 4], parsed=columns[:, 5].astype(bool),
               true_country=np.array(countries, dtype=object), true_place=true_places, pred_place=pred_places)


@functools.lru_cache(maxsize=4)
def _cached(folder: str, size: int, mtime: float) -> Run:
    return read_run(folder)


def open_run(folder: str | Path) -> Run:
    """`read_run`, kept while the predictions file is unchanged (the page's filters and clicks reuse it)."""
    folder = Path(str(folder or "").strip()).expanduser()
    path = folder / PREDICTIONS
    if not path.is_file():
        return read_run(folder)  # raises the message
    stat = path.stat()
    return _cached(str(folder.resolve()), stat.st_size, stat.st_mtime)


HEADLINE = (("num_images", "photos", "{:.0f}"), ("median_km", "median error", "{:.1f} km"),
            ("mean_km", "mean error", "{:.1f} km"), ("acc@1km", "street (1 km)", "{:.1f} %"),
            ("acc@25km", "city (25 km)", "{:.1f} %"), ("acc@200km", "region (200 km)", "{:.1f} %"),
            ("acc@750km", "country (750 km)", "{:.1f} %"), ("acc@2500km", "continent (2500 km)", "{:.1f} %"),
            ("country_acc", "country named right", "{:.1f} %"), ("geoguessr", "GeoGuessr score", "{:.0f}"),
            ("parse_failure_rate", "parse failures", "{:.1f} %"), ("num_guesses", "guesses per photo", "{:.0f}"))


def headline(run: Run) -> str:
    """The run's headline metrics as a Markdown table (from metrics.json; a few from the predictions without it)."""
    metrics = run.metrics
    lines = [f"**{metrics.get('model') or run.folder.name}** on **{metrics.get('benchmark') or run.folder}**", "",
             "| metric | value |", "| --- | --- |"]
    if not metrics:
        lines[0] = f"**{run.folder}**: no {METRICS} (the evaluation has not finished); from the predictions:"
        metrics = {"num_images": len(run), "median_km": float(np.median(run.error_km)),
                   "parse_failure_rate": 100.0 * float(np.mean(~run.parsed))}
    for key, label, fmt in HEADLINE:
        if isinstance(metrics.get(key), (int, float)):
            lines.append(f"| {label} | {fmt.format(metrics[key])} |")
    return "\n".join(lines)


def record_text(record: Mapping[str, Any]) -> str:
    """One record for the page: truth, guess and error, the guesses when several, and the reasoning."""
    lines = [f"### {record['id']}: error {record['error_km']:.1f} km"]
    lines.append(f"- truth: {record['true_lat']:.4f}, {record['true_lon']:.4f} ({_place_text(record.get('true_place'))})")
    if record.get("parsed"):
        lines.append(f"- guess: {record['pred_lat']:.4f}, {record['pred_lon']:.4f} "
                     f"({_place_text(record.get('pred_place'))})")
        names = record.get("pred_names") or {}
        written = ", ".join(str(names[k]) for k in ("city", "region", "country") if names.get(k))
        if written:
            lines.append(f"- the model named: {written}")
    else:
        lines.append("- guess: none; no coordinates could be parsed from the answer")
    guesses = record.get("guesses") or []
    if len(guesses) > 1:
        lines.append(f"- {len(guesses)} guesses, most supported first: " + "; ".join(
            f"{g['lat']:.2f}, {g['lon']:.2f} ({g['error_km']:.0f} km)" if g.get("parsed") else "(no answer)"
            for g in guesses))
    reasoning = reasoning_of(record.get("completion") or "")
    lines += ["", "**Reasoning**", "", reasoning or "(none)", "", "**Full answer**", "",
              "```", record.get("completion") or "", "```"]
    return "\n".join(lines)
