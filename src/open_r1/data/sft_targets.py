"""Chain-of-Region SFT targets: short, rule-based completions in exactly the format GRPO rewards.

A warm start only has to teach the format and the habit of narrowing down a place, so a target is built from the
row's labels alone (continent -> country -> region -> city, then the answer), through `answer.format` and
`geo.labels` so it cannot drift from what the rewards check. The phrasing is picked per row from a few templates
by a stable hash of the row id: the model learns the structure, not one sentence, and a row's target never changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from open_r1.answer import render_answer, wrap
from open_r1.configs import SFT_TARGETS
from open_r1.data.rows import DataError, Row
from open_r1.errors import ArgumentError

logger = logging.getLogger(__name__)

TARGET_CHAIN_OF_REGION, TARGET_ANSWER = SFT_TARGETS
TARGET_CHOICES = SFT_TARGETS

# Each phrasing names every known level in order, coarse to fine; `{steps}` joins the levels after the first.
_OPENERS = (
    "The scene points to {continent}.",
    "This looks like {continent}.",
    "Start with the continent: {continent}.",
    "Broadly, this is {continent}.",
)
_STEP_JOINERS = (
    ("Within it, {country}", ", region {region}", ", city {city}"),
    ("Narrowing down: {country}", ", then {region}", ", then {city}"),
    ("The country is {country}", ", the region {region}", ", the city {city}"),
    ("More precisely {country}", ", in {region}", ", around {city}"),
)


@dataclass(frozen=True)
class RegionLabels:
    """The place levels of a target: coordinates plus the names shown (None where unknown)."""

    lat: float
    lon: float
    continent: str | None
    country: str | None
    region: str | None
    city: str | None


def _field(row: Row | Mapping[str, Any], name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _coordinates(row: Row | Mapping[str, Any]) -> tuple[float, float]:
    lat, lon = _field(row, "lat"), _field(row, "lon")
    if lat is None or lon is None:
        raise DataError(f"{_field(row, 'source') or _field(row, 'id')}: no coordinates for a Chain-of-Region target")
    return float(lat), float(lon)


def resolve_labels_batch(rows: Sequence[Row | Mapping[str, Any]]) -> list[RegionLabels]:
    """`resolve_labels` for many rows, with one vectorised lookup (`geo.labels.resolve_places`)."""
    from open_r1.geo import continent_of, country_code, country_name
    from open_r1.geo.labels import resolve_places

    points = [_coordinates(row) for row in rows]
    places = resolve_places([p[0] for p in points], [p[1] for p in points],
                            *([_field(row, name) for row in rows] for name in ("country", "region", "city")))
    out = []
    for (lat, lon), country, region, city in zip(points, places.country.tolist(), places.region.tolist(),
                                                  places.city.tolist()):
        code = country_code(country) if country else None
        shown = (country_name(code) if code else None) or country
        out.append(RegionLabels(lat, lon, continent_of(code) if code else None, shown, region, city))
    return out


def resolve_labels(row: Row | Mapping[str, Any]) -> RegionLabels:
    """The row's place levels by the one labelling rule (`open_r1.geo.labels`): the row's own labels, gaps
    filled from the nearest GeoNames place of the row's country within 300 km (region) / 50 km (city), the
    continent from the country, and country codes shown as names."""
    return resolve_labels_batch([row])[0]


def phrasing_index(key: str, n: int) -> int:
    """A stable choice in range(n) from a row key (Python's `hash` is salted per process, so not that)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % n


def reasoning_chain(labels: RegionLabels, key: str) -> str:
    """The `<think>` body: the known levels from continent to city, in one of a few phrasings."""
    i = phrasing_index(key, len(_OPENERS) * len(_STEP_JOINERS))
    opener, templates = _OPENERS[i % len(_OPENERS)], _STEP_JOINERS[i // len(_OPENERS)]
    parts = [opener.format(continent=labels.continent)] if labels.continent else []
    values = (("country", labels.country), ("region", labels.region), ("city", labels.city))
    steps = "".join(t.format(**{name: v}) for t, (name, v) in zip(templates, values) if v).lstrip(", ")
    if steps:
        parts.append(steps[0].upper() + steps[1:] + ".")
    if not parts:
        parts.append("No place names are known, so I answer with coordinates only.")
    return " ".join(parts)


def chain_of_region_target(row_or_labels: Row | Mapping[str, Any] | RegionLabels, key: str | None = None) -> str:
    """A complete SFT completion for a labelled row: `<think>` region chain, `<answer>` names + coordinates.

    `key` picks the phrasing (default: the row's id); a `RegionLabels` is used as given, anything else is
    resolved with `resolve_labels` first.
    """
    labels = row_or_labels if isinstance(row_or_labels, RegionLabels) else resolve_labels(row_or_labels)
    if key is None:
        key = "" if isinstance(row_or_labels, RegionLabels) else str(_field(row_or_labels, "id") or "")
    answer = render_answer(labels.lat, labels.lon, labels.country, labels.region, labels.city)
    return wrap(reasoning_chain(labels, key), answer)


def sft_target(row: Row, targets: str = TARGET_CHAIN_OF_REGION) -> str:
    """The assistant turn SFT trains on for a row.

    `chain_of_region`: the generated target for rows with coordinates; rows without coordinates (non-geo
    tasks mixed into the data) keep their own answer. `answer`: the row's own gpt answer, as written.
    """
    if targets not in TARGET_CHOICES:
        raise ArgumentError(f"targets must be one of {TARGET_CHOICES}, got {targets!r}")
    if targets == TARGET_CHAIN_OF_REGION and row.lat is not None:
        return chain_of_region_target(row)
    if not row.solution.strip():
        raise DataError(
            f"{row.source}: no gpt answer to train on"
            + (" and no coordinates for a Chain-of-Region target" if targets == TARGET_CHAIN_OF_REGION else "")
        )
    return row.solution


def sft_targets(rows: Sequence[Row], targets: str = TARGET_CHAIN_OF_REGION) -> list[str]:
    """`sft_target` for every row (the Chain-of-Region rows' labels resolved in one batch), logging how many
    rows kept their own answer."""
    if targets != TARGET_CHAIN_OF_REGION:
        return [sft_target(row, targets) for row in rows]
    geo = [row for row in rows if row.lat is not None]
    resolved = iter(resolve_labels_batch(geo))
    out = [chain_of_region_target(next(resolved), str(row.id or "")) if row.lat is not None else sft_target(row, targets)
           for row in rows]
    own = len(rows) - len(geo)
    if own:
        logger.info("%d of %d rows have no coordinates and train on their own answer", own, len(rows))
    return out


# --- tool-using targets ---------------------------------------------------------------------------------------

CLUE_BOX_FIELD = "clue_box"  # optional row field: where the decisive clue is, [x1, y1, x2, y2] (0-1) or {"box", "view"}
LOOKUP_MAX_KM = 50.0  # a lookup whose best match lies farther from the truth than this would teach a wrong answer
_ZOOM_THOUGHTS = (
    "A small sign may tell the place; I zoom in to read it.",
    "There is writing too small to read here, so I zoom in on it.",
)
_LOOKUP_THOUGHT = " I look up the coordinates of {city}."


def clue_box(row: Row) -> tuple[list[float], int] | None:
    """The row's `clue_box` as ([x1, y1, x2, y2], view), None when it has none; a malformed one is a DataError
    naming the row's file and line."""
    value = row.extra.get(CLUE_BOX_FIELD) if row.extra else None
    if value is None:
        return None
    view = 0
    if isinstance(value, Mapping):
        value, view = value.get("box"), value.get("view", 0)
    try:
        box = [float(v) for v in value]
        view = int(view)
    except (TypeError, ValueError):
        box = []
    if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        raise DataError(f"{row.source}: field '{CLUE_BOX_FIELD}': expected [x1, y1, x2, y2] in 0-1 with x2 > x1 and "
                        f"y2 > y1, or {{'box': [...], 'view': n}}, got {row.extra.get(CLUE_BOX_FIELD)!r}")
    if not 0 <= view < len(row.image_paths):
        raise DataError(f"{row.source}: field '{CLUE_BOX_FIELD}': view {view} but the row has "
                        f"{len(row.image_paths)} image(s)")
    return box, view


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def tool_episode_target(row: Row, labels: RegionLabels, tools: Sequence[str]) -> list[dict[str, Any]] | None:
    """A Chain-of-Region target that uses tools, as the assistant and tool turns of an episode (tool turns with
    content None: whoever trains or exports runs the tools to fill them), or None when no tool applies.

    A zoom on the row's `clue_box` opens the reasoning when the row has one; a lookup of the city closes it when
    the gazetteer's best match for that name lies within 50 km of the truth, and the answer then gives the
    looked-up coordinates. One `<think>` block runs across the turns and the `<answer>` comes last, so the
    episode reads as the same format the rewards grade (`open_r1.answer.episode`)."""
    from open_r1.geo import haversine_km
    from open_r1.geo.geocode import places_named

    key = str(row.id or "")
    chain = reasoning_chain(labels, key)
    turns: list[dict[str, Any]] = []
    text = "<think>"
    clue = clue_box(row) if "zoom" in tools else None
    if clue is not None:
        (x1, y1, x2, y2), view = clue
        arguments = {"x1": x1, "y1": y1, "x2": x2, "y2": y2}
        if len(row.image_paths) > 1:
            arguments["view"] = view
        turns += [
            {"role": "assistant", "content": text + _ZOOM_THOUGHTS[phrasing_index(key, len(_ZOOM_THOUGHTS))],
             "tool_calls": [_call("zoom", arguments)]},
            {"role": "tool", "name": "zoom", "content": None},
        ]
        text = ""
    lat, lon = labels.lat, labels.lon
    if "lookup" in tools and labels.city and labels.country:
        found = places_named(labels.city, country=labels.country, limit=1)
        if found and haversine_km(found[0].lat, found[0].lon, lat, lon) <= LOOKUP_MAX_KM:
            turns += [
                {"role": "assistant", "content": text + chain + _LOOKUP_THOUGHT.format(city=labels.city),
                 "tool_calls": [_call("lookup", {"place": f"{labels.city}, {labels.country}"})]},
                {"role": "tool", "name": "lookup", "content": None},
            ]
            text, chain = "", ""
            lat, lon = found[0].lat, found[0].lon
    if not turns:
        return None
    answer = render_answer(lat, lon, labels.country, labels.region, labels.city)
    final = (text + chain).strip()
    turns.append({"role": "assistant", "content": f"{final}</think>\n<answer>{answer}</answer>".lstrip()})
    return turns


def sft_episodes(rows: Sequence[Row], tools: Sequence[str], targets: str = TARGET_CHAIN_OF_REGION) -> list[list[dict]]:
    """The completion of every row as a list of messages: a tool episode where a tool applies
    (`tool_episode_target`), else the plain target as one assistant turn."""
    plain = sft_targets(rows, targets)
    if targets != TARGET_CHAIN_OF_REGION or not tools:
        return [[{"role": "assistant", "content": text}] for text in plain]
    geo = [row for row in rows if row.lat is not None]
    labels = dict(zip((id(r) for r in geo), resolve_labels_batch(geo)))
    out, with_tools = [], 0
    for row, text in zip(rows, plain):
        episode = tool_episode_target(row, labels[id(row)], tools) if id(row) in labels else None
        with_tools += episode is not None
        out.append(episode or [{"role": "assistant", "content": text}])
    logger.info("%d of %d SFT targets call tools (%s)", with_tools, len(rows), ", ".join(tools))
    return out
