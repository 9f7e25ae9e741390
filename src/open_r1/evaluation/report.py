"""Plain-text tables for the terminal: a run's metrics, and the run next to published results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from open_r1.evaluation.metrics import THRESHOLD_NAMES, THRESHOLDS_KM, accuracy_key
from open_r1.evaluation.published import METRIC_COLUMNS, PublishedResult

_PERCENT = {accuracy_key(t): f"acc@{t:g}km ({THRESHOLD_NAMES[t]})" for t in THRESHOLDS_KM} | {
    "country_acc": "country accuracy",
    "region_acc": "region accuracy",
    "subregion_acc": "sub-region accuracy",
    "city_acc": "city accuracy",
    "parse_failure_rate": "unparseable answers",
}
_PLAIN = {
    "mean_km": ("mean error", "km"),
    "median_km": ("median error", "km"),
    "geoguessr": ("GeoGuessr score", "/ 5000"),
}
_SETS = {"geo_r": "geo_r (ours)", "osv5m": "osv5m (OSV-5M's exactly)"}
_SHORT = {"median_km": "median km", "geoguessr": "GeoGuessr", "country_acc": "country", "region_acc": "region",
          "city_acc": "city"}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key.endswith("_km"):
        return f"{value:,.1f}"
    if key == "geoguessr" or key.endswith("score"):
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _lines(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, label in _PERCENT.items():
        if prefix + key in metrics:
            value = metrics[prefix + key]
            rows.append((label, "-" if value is None else f"{value:.2f} %"))
    for key, (label, unit) in _PLAIN.items():
        if prefix + key in metrics:
            rows.append((label, f"{_cell(key, metrics[prefix + key])} {unit}"))
    return rows


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """The metrics of one run, one per line; best-of-k and the top-5 weighted score when k > 1."""
    k = metrics.get("num_guesses", 1)
    rows = [("images", str(metrics["num_images"])), ("guesses per image", str(k))]
    if "metric_set" in metrics:
        rows.append(("metric definitions", _SETS.get(metrics["metric_set"], metrics["metric_set"])))
    rows += _lines(metrics)
    if k > 1:
        rows.append((f"-- best of {k} --", ""))
        rows += [(label, value) for label, value in _lines(metrics, "best_of_k/") if label != "unparseable answers"]
        if "top5_weighted_score" in metrics:
            level = metrics.get("top5_level", "region")
            rows.append((f"top-5 {level} credit", f"{_score(metrics.get('top5_classification'))} / 1"))
            rows.append(("top-5 weighted score", f"{_score(metrics['top5_weighted_score'])} / 1"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def comparison_table(metrics: Mapping[str, Any], published: Sequence[PublishedResult], benchmark: str,
                     run_name: str = "this run") -> str:
    """The run and the published rows of one benchmark side by side, with numbered sources below.

    Columns are the metrics at least one published row reports; '-' marks a number a source does not give.
    """
    if not published:
        return (f"No published results for {benchmark} in the table yet: add rows (with their source) to "
                f"src/open_r1/evaluation/published_results.csv.")
    columns = [c for c in METRIC_COLUMNS if any(c in p.metrics for p in published)]
    header = ["method"] + [_SHORT.get(c, c) for c in columns]
    body = [[f"{p.method} [{i}]"] + [_cell(c, p.metrics.get(c)) for c in columns] for i, p in enumerate(published, 1)]
    body.append([run_name] + [_cell(c, metrics.get(c)) for c in columns])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [f"{benchmark}: accuracies in % of images", fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    lines.append("")
    for i, p in enumerate(published, 1):
        lines.append(f"[{i}] {p.source}" + (f", {p.table}" if p.table else ""))
    return "\n".join(lines)
