"""The app's world map as an inline SVG: it needs no tile server and no map file from a CDN (plotly's geo charts
fetch their outlines from one at page load), so it draws offline, in CI and behind firewalls alike.

Land is the 1-degree cells holding a GeoNames place (the table the geocoder ships, as in the run's PNG map);
guesses join their truth along the great circle, coloured by error. Markers carry `data-id`: the page's script
turns a click into an event naming the record, and wheel / drag zoom and pan the map.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from open_r1.evaluation.plots import great_circle
from open_r1.geo import haversine_km
from open_r1.geo.geocode import place_points

# error bins (km, upper bound) and their colours, green (street/city) to red (another continent)
ERROR_BINS: tuple[tuple[float, str, str], ...] = (
    (25.0, "#1a9850", "under 25 km"),
    (200.0, "#91cf60", "25-200 km"),
    (750.0, "#e6c229", "200-750 km"),
    (2500.0, "#fc8d59", "750-2500 km"),
    (float("inf"), "#d73027", "over 2500 km"),
)
TRUTH_COLOUR, GUESS_COLOUR, FAILED_COLOUR = "#2166ac", "#b2182b", "#222222"

# Wheel zooms around the pointer, a drag pans, a double click resets; a click on a marker triggers `select`
# with the marker's data-id (gr.HTML's `trigger`).
MAP_SCRIPT = """
const view0 = [-180, -90, 360, 180];
let drag = null, moved = false;
const svg = () => element.querySelector('svg.geo-map');
const box = () => (svg() ? svg().getAttribute('viewBox').split(' ').map(Number) : view0);
const setBox = (b) => { if (svg()) svg().setAttribute('viewBox', b.join(' ')); };
element.addEventListener('wheel', (e) => {
  const s = svg(); if (!s || !s.contains(e.target)) return;
  e.preventDefault();
  const b = box(), r = s.getBoundingClientRect();
  const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
  const k = Math.min(Math.max(e.deltaY > 0 ? 1.25 : 0.8, 2 / b[2]), view0[2] / b[2]);
  const w = b[2] * k, h = b[3] * k;
  setBox([b[0] + fx * (b[2] - w), b[1] + fy * (b[3] - h), w, h]);
}, {passive: false});
element.addEventListener('mousedown', (e) => { if (svg() && svg().contains(e.target)) { drag = [e.clientX, e.clientY, box()]; moved = false; } });
window.addEventListener('mouseup', () => { drag = null; });
element.addEventListener('mousemove', (e) => {
  if (!drag) return;
  const r = svg().getBoundingClientRect(), b = drag[2];
  const dx = (e.clientX - drag[0]) * b[2] / r.width, dy = (e.clientY - drag[1]) * b[3] / r.height;
  if (Math.abs(dx) + Math.abs(dy) > 0) moved = true;
  setBox([b[0] - dx, b[1] - dy, b[2], b[3]]);
});
element.addEventListener('dblclick', () => setBox(view0));
element.addEventListener('click', (e) => {
  const m = e.target.closest('[data-id]');
  if (m && !moved) trigger('select', {id: m.dataset.id});
  moved = false;
});
"""

MAP_CSS = """
svg.geo-map { width: 100%; height: auto; background: #f4f8fb; border: 1px solid #ccd; cursor: grab; }
svg.geo-map .marker { cursor: pointer; stroke: white; stroke-width: 0.25; }
svg.geo-map .marker:hover { stroke: black; stroke-width: 0.5; }
.geo-legend { font-size: 0.85em; display: flex; flex-wrap: wrap; gap: 0.9em; margin-top: 0.3em; }
.geo-legend i { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 0.3em; }
"""


@dataclass(frozen=True)
class Pin:
    """One marker: a point, its record (or guess) id, its kind (truth, guess, failed) and its tooltip."""

    lat: float
    lon: float
    id: str
    kind: str
    title: str
    radius: float = 1.3


def error_colour(km: float) -> str:
    return next(colour for bound, colour, _ in ERROR_BINS if km < bound)


@functools.lru_cache(maxsize=1)
def land_path() -> str:
    """The SVG path of every 1-degree cell that holds a GeoNames place, one rectangle per run of cells in a row."""
    lat, lon = place_points()
    rows = np.clip(np.floor(np.asarray(lat)).astype(int), -90, 89)
    cols = np.clip(np.floor(np.asarray(lon)).astype(int), -180, 179)
    grid = np.zeros((180, 360), dtype=bool)
    grid[89 - rows, cols + 180] = True  # row 0 is 89..90 N
    parts = []
    for r in range(180):
        cells = np.flatnonzero(grid[r])
        if not len(cells):
            continue
        breaks = np.flatnonzero(np.diff(cells) > 1)
        starts = np.concatenate([[cells[0]], cells[breaks + 1]])
        ends = np.concatenate([cells[breaks], [cells[-1]]])
        parts.extend(f"M{s - 180} {r - 90}h{e - s + 1}v1h{s - e - 1}z" for s, e in zip(starts, ends))
    return "".join(parts)


def _arc_path(lat1: float, lon1: float, lat2: float, lon2: float) -> str:
    km = float(haversine_km(lat1, lon1, lat2, lon2))
    steps = int(min(48, max(2, km // 150)))
    return "".join("M" + "L".join(f"{x:.2f} {-y:.2f}" for x, y in segment)
                   for segment in great_circle(lat1, lon1, lat2, lon2, steps=steps))


def _graticule() -> str:
    lines = [f"M-180 {-lat}H180" for lat in range(-60, 61, 30)] + [f"M{lon} -90V90" for lon in range(-150, 151, 30)]
    return f'<path d="{"".join(lines)}" stroke="#dde" stroke-width="0.2" fill="none"/>'


def svg_map(pins: Sequence[Pin], arcs: Sequence[tuple[float, float, float, float, float]] = (),
            legend: Sequence[tuple[str, str]] = (), caption: str = "") -> str:
    """The map as HTML: land, great-circle `arcs` (lat1, lon1, lat2, lon2, error km) coloured by error, `pins` on
    top, then a legend of (colour, label) and a caption."""
    by_colour: dict[str, list[str]] = {}
    for lat1, lon1, lat2, lon2, km in arcs:
        by_colour.setdefault(error_colour(km), []).append(_arc_path(lat1, lon1, lat2, lon2))
    parts = [
        '<svg class="geo-map" xmlns="http://www.w3.org/2000/svg" viewBox="-180 -90 360 180" '
        'preserveAspectRatio="xMidYMid meet" role="img" aria-label="world map">',
        _graticule(),
        f'<path class="land" d="{land_path()}" fill="#d5dbe1" stroke="none"/>',
        *(f'<path class="arc" d="{"".join(paths)}" stroke="{colour}" stroke-width="0.5" fill="none" '
          f'stroke-opacity="0.75"/>' for colour, paths in by_colour.items()),
    ]
    colours = {"truth": TRUTH_COLOUR, "guess": GUESS_COLOUR, "failed": FAILED_COLOUR}
    for pin in pins:
        parts.append(
            f'<circle class="marker {pin.kind}" data-id="{html.escape(pin.id, quote=True)}" cx="{pin.lon:.3f}" '
            f'cy="{-pin.lat:.3f}" r="{pin.radius:.2f}" fill="{colours.get(pin.kind, GUESS_COLOUR)}">'
            f"<title>{html.escape(pin.title)}</title></circle>"
        )
    parts.append("</svg>")
    if legend:
        items = "".join(f'<span><i style="background:{c}"></i>{html.escape(label)}</span>' for c, label in legend)
        parts.append(f'<div class="geo-legend">{items}</div>')
    if caption:
        parts.append(f'<div class="geo-caption">{html.escape(caption)}</div>')
    return "".join(parts)


def error_legend() -> list[tuple[str, str]]:
    """Legend entries of the error colours, then of the markers."""
    return [(colour, label) for _, colour, label in ERROR_BINS] + [
        (TRUTH_COLOUR, "truth"), (GUESS_COLOUR, "guess"), (FAILED_COLOUR, "no parseable answer (at the truth)")]
