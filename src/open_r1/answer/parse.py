"""Read the final geolocation answer out of a completion, in the forms models actually write.

The rules guard the rewards against gaming: only the final answer counts (the `<answer>` block, else what
follows the reasoning); an answer with more than one distinct coordinate pair is no answer (hedging must not
pay); latitude and longitude are never swapped by guesswork; out-of-range or non-finite values are rejected.
All patterns are linear-time and the text they see is bounded, so a runaway completion costs microseconds.
"""

from __future__ import annotations

import json
import math
import re
from typing import NamedTuple

from open_r1.answer.format import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    split_completion,
)

__all__ = ["MAX_ANSWER_CHARS", "MAX_COMPLETION_CHARS", "GeoAnswer", "answer_text", "parse_answer"]

MAX_COMPLETION_CHARS = 131_072  # about 32k tokens: longer than any completion a trainer lets through
MAX_ANSWER_CHARS = 4_096  # a final answer is a few lines; a longer one is prose or a list of guesses
_MAX_TAGS = 8  # more tags than this is not the format; it also bounds the work of split_completion's regexes
_SAME_PAIR_DEG = 0.01  # pairs closer than this (about 1 km) are one answer written twice, not a hedge


class GeoAnswer(NamedTuple):
    """A parsed answer: coordinates in decimal degrees plus the place names the model wrote, if any.

    Immutable and cheap to build (a step parses tens of thousands)."""

    lat: float
    lon: float
    country: str | None = None
    region: str | None = None
    city: str | None = None


def answer_text(text: str) -> str | None:
    """The part of a completion that holds its final answer, or None if it has none.

    `<answer>` present: the last closed answer block (via `split_completion`). Else the text after the last
    `</think>`. An unclosed `<think>` is reasoning cut off before any answer. Else the whole text.
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS:
        return None
    start = text.find(ANSWER_OPEN)
    if start >= 0:
        # No answer block starts before the first tag: splitting from there gives split_completion's answer
        # without a scan of the whole reasoning. Few tags keep its lazy patterns linear on hostile text.
        tail = text[start:]
        opens = tail.count(ANSWER_OPEN)
        if opens == 1:  # what split_completion returns for a single tag, without its two regex scans
            end = tail.find(ANSWER_CLOSE, len(ANSWER_OPEN))
            return tail[len(ANSWER_OPEN):end] if end >= 0 else None
        if opens > _MAX_TAGS or tail.count(THINK_OPEN) > _MAX_TAGS:
            return None
        return split_completion(tail)[1]
    end = text.rfind(THINK_CLOSE)
    if end >= 0:
        return text[end + len(THINK_CLOSE):]
    if THINK_OPEN in text:
        return None
    return text


# --- patterns --------------------------------------------------------------------------------------------

_SIGN = r"[-+\u2212\u2013]"  # ASCII signs, the Unicode minus and the en dash models use as one
_NUM = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_DEG_MARK = r"(?:°|º|˚|\s?deg(?:rees?)?\b)"
_MIN_MARK = r"['′’]"
_SEC_MARK = r"(?:\"|″|”|''|′′)"
_NUMBER_END = r"(?!\w|\.\d)"  # a sentence's full stop may follow a number, more digits may not
_LIST_NEXT = rf"(?=\s*[,;/]\s*{_SIGN}?\d)"  # a labelled value followed by another number: a list of guesses


def _angle(tag: str, hemisphere: str) -> str:
    """An angle: signed decimal degrees, or degrees-minutes(-seconds); then a hemisphere letter or word.

    `hemisphere` is '' (must be absent), '?' (optional) or '!' (required).
    """
    body = (
        rf"(?:(?P<{tag}s>{_SIGN})\s*)?(?<![\w.])(?P<{tag}d>{_NUM})"
        rf"(?:\s*{_DEG_MARK}(?:\s*(?P<{tag}m>\d{{1,2}}(?:\.\d+)?)\s*{_MIN_MARK}"
        rf"(?:\s*(?P<{tag}c>\d{{1,2}}(?:\.\d+)?)\s*{_SEC_MARK})?)?)?"
    )
    if not hemisphere:
        return body + _NUMBER_END
    letter = rf"\s*(?P<{tag}h>[NSEW](?![A-Za-z])|(?i:north|south|east|west)\b)"
    return body + (letter if hemisphere == "!" else rf"(?:{letter}|{_NUMBER_END})")


# No two whitespace runs touch (each pair is split by a required character), so a failed match backtracks
# linearly: a hostile answer of padded keys costs microseconds, not seconds.
_KEY_END = r"[\"'*]*\s*(?:\([^)\n]{0,20}\)\s*)?[:=]\s*(?:[\"'*]+\s*)?"
_LAT_KEY = rf"(?i:\b(?:lat|latitude)\b{_KEY_END}|\blatitude\s+(?:is\s+|of\s+)?)"
_LON_KEY = rf"(?i:\b(?:lon|lng|long|longitude)\b{_KEY_END}|\blongitude\s+(?:is\s+|of\s+)?)"
_LATLON_KEY = rf"(?i:\blat(?:itude)?\s*[/,&]\s*(?:lon|lng|long|longitude)\b){_KEY_END}"
_NAME_KEY = r"(?i:\b(?P<field>country|region|state|province|city|town)\b)[\"'*]*\s*[:=][ \t*]*"
# A name is quoted (JSON, Python dicts) or runs to the end of its line, a comma or a digit: digits never belong
# to a name, so a coordinate pair cannot hide inside one.
_NAME_CHARS = r"[^\n\r\",;{}\[\]\d:=*]"
_NAME_VALUE = rf"(?:\"(?P<nq>[^\"\n\d]{{1,80}})\"|'(?P<ns>[^'\n\d]{{1,80}})'|(?P<name>{_NAME_CHARS}{{1,80}}))"
_PAIR_SEP = r"\s*(?:[,;/]\s*)?"

_ANSWER_RE = re.compile(
    # The lookahead rejects most positions in one step before any alternative is tried: every alternative
    # starts at a word-initial key letter, a digit that does not continue a number or word, a sign or a bracket.
    r"(?=(?<!\w)[CcRrSsPpTtLl]|(?<![\w.])\d|[(\[+\-\u2212\u2013])(?:"
    + "|".join(
        (
            rf"(?P<NAMED>{_NAME_KEY}{_NAME_VALUE})",
            rf"(?P<LATLON>{_LATLON_KEY}(?:[\[(]\s*)?{_angle('a', '?')}\s*[,;/]\s*{_angle('b', '?')})",
            rf"(?P<LAT>{_LAT_KEY}{_angle('c', '?')}(?P<cnext>{_LIST_NEXT})?)",
            rf"(?P<LON>{_LON_KEY}{_angle('d', '?')}(?P<dnext>{_LIST_NEXT})?)",
            rf"(?P<HEMI>{_angle('e', '!')}{_PAIR_SEP}{_angle('f', '!')})",
            rf"(?P<BRACKET>[\[(]\s*{_angle('g', '')}\s*[,;]\s*{_angle('h', '')}\s*[\])])",
            rf"(?P<BARE>(?<![\w.])(?P<is>{_SIGN})?(?P<id>\d+\.\d+)\s*,\s*"
            rf"(?P<js>{_SIGN})?(?P<jd>\d+\.\d+){_NUMBER_END})",
        )
    )
    + ")"
)
_NAME_EDGES = " \t'()"
_DIGIT_RE = re.compile(r"\d")


def _canonical_body(name_chars: str) -> str:
    """The answer format the prompt asks for, matched whole: no room for a second pair, so no general scan."""
    return (
        rf"\s*(?:Country:[ \t]?(?P<country>{name_chars}{{1,80}})\n\s*)?"
        rf"(?:Region:[ \t]?(?P<region>{name_chars}{{1,80}})\n\s*)?"
        rf"(?:City:[ \t]?(?P<city>{name_chars}{{1,80}})\n\s*)?"
        r"Latitude:[ \t]?(?P<lat>-?\d{1,2}(?:\.\d+)?)[ \t]?\n\s*Longitude:[ \t]?(?P<lon>-?\d{1,3}(?:\.\d+)?)\s*"
    )


_CANONICAL_RE = re.compile(_canonical_body(_NAME_CHARS))
_FIELD = {"country": "country", "region": "region", "state": "region", "province": "region", "city": "city",
          "town": "city"}


class _Invalid(Exception):
    """A coordinate that is present but unusable: the whole answer is rejected."""


_GROUPS = {tag: tuple(tag + part for part in "dmcs") for tag in "abcdefgh"}
_HEMISPHERE_GROUP = {tag: tag + "h" for tag in "abcdef"}  # the angles that may carry a hemisphere letter
_MINUS = frozenset(("-", "\u2212", "\u2013"))


def _value(m: re.Match, tag: str) -> tuple[float, str | None]:
    """Signed decimal degrees of angle `tag` and its hemisphere letter (if written)."""
    whole, minutes, seconds, sign = m.group(*_GROUPS[tag])
    degrees = float(whole)
    if minutes is not None:
        if degrees != int(degrees) or float(minutes) >= 60 or (seconds is not None and float(seconds) >= 60):
            raise _Invalid
        degrees += float(minutes) / 60 + (float(seconds) / 3600 if seconds is not None else 0.0)
    negative = sign in _MINUS
    hemisphere_group = _HEMISPHERE_GROUP.get(tag)
    hemisphere = m.group(hemisphere_group) if hemisphere_group else None
    if hemisphere is not None:
        hemisphere = hemisphere[0].upper()  # "S" or "south"
        if negative and hemisphere in "NE":  # "-38 N" contradicts itself
            raise _Invalid
        negative = hemisphere in "SW"
    return (-degrees if negative else degrees), hemisphere


def _pair(m: re.Match, first: str, second: str) -> tuple[float, float]:
    """(lat, lon) of two angles: hemisphere letters decide the roles when both are given, else the order."""
    (a, ha), (b, hb) = _value(m, first), _value(m, second)
    if ha is None and hb is None:
        return a, b
    if ha is None or hb is None:
        raise _Invalid
    if ha in "NS" and hb in "EW":
        return a, b
    if ha in "EW" and hb in "NS":
        return b, a
    raise _Invalid  # two latitudes or two longitudes


def _add_distinct(pairs: list[tuple[float, float]], pair: tuple[float, float]) -> None:
    for lat, lon in pairs:
        if abs(lat - pair[0]) < _SAME_PAIR_DEG and abs(lon - pair[1]) < _SAME_PAIR_DEG:
            return
    pairs.append(pair)


_CANONICAL_FIELDS = ("country", "region", "city", "lat", "lon")
_new_answer = tuple.__new__  # GeoAnswer's own __new__ is Python code; this runs for most completions of a step


def _parse_canonical(m: re.Match) -> GeoAnswer | None:
    country, region, city, lat, lon = m.group(*_CANONICAL_FIELDS)
    lat, lon = float(lat), float(lon)
    if lat > 90.0 or lat < -90.0 or lon > 180.0 or lon < -180.0:
        return None
    return _new_answer(GeoAnswer, (lat, lon, country and country.strip(_NAME_EDGES) or None,
                                   region and region.strip(_NAME_EDGES) or None,
                                   city and city.strip(_NAME_EDGES) or None))


def _parse_body(body: str) -> GeoAnswer | None:
    if len(body) > MAX_ANSWER_CHARS:
        return None
    canonical = _CANONICAL_RE.fullmatch(body)
    if canonical is not None:
        return _parse_canonical(canonical)
    flat = _parse_flat_json(body)
    return _parse_general(body) if flat is _NOT_FLAT else flat


_JSON_FIELD = {"lat": "lat", "latitude": "lat", "lon": "lon", "lng": "lon", "long": "lon", "longitude": "lon",
               **_FIELD}
_NOT_FLAT = object()
_JSON_NAME_RE = re.compile(r'[^"\n\d]{1,80}')  # what the general scan reads as a double-quoted name
_JSON_VALUE_ON_NEXT_LINE = re.compile(r":[ \t]*[\r\n]")  # the general scan reads no name there
_JSON_PAIRS = json.JSONDecoder(object_pairs_hook=list)  # keys in order, duplicates kept


def _parse_flat_json(body: str) -> GeoAnswer | None | object:
    """The answer of a flat JSON object of coordinate and name keys (`{"country": "PT", "lat": 38.7, "lon":
    -9.1}`), read by the C JSON parser; `_NOT_FLAT` for anything else (escapes, other keys, nesting, strings
    for numbers), which the general scan reads. It gives what the general scan gives for the same text."""
    text = body.strip()
    if text[:1] != "{" or text[-1:] != "}" or "\\" in text or _JSON_VALUE_ON_NEXT_LINE.search(text):
        return _NOT_FLAT
    try:
        pairs = _JSON_PAIRS.decode(text)
    except ValueError:
        return _NOT_FLAT
    lat = lon = None
    names: dict[str, set[str]] = {}
    for key, value in pairs:
        field = _JSON_FIELD.get(key.lower())
        if field is None:
            return _NOT_FLAT
        if field == "lat" or field == "lon":
            if type(value) not in (int, float) or (lat if field == "lat" else lon) is not None:
                return _NOT_FLAT
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float: the general scan reads it as inf
                return None
            if field == "lat":
                lat = number
            else:
                lon = number
        elif not isinstance(value, str) or _JSON_NAME_RE.fullmatch(value) is None:
            return _NOT_FLAT
        elif name := value.strip(_NAME_EDGES):
            names.setdefault(field, set()).add(name)
    if lat is None or lon is None:
        return _NOT_FLAT
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        return None
    picked = {field: next(iter(values)) if len(values) == 1 else None for field, values in names.items()}
    return GeoAnswer(lat, lon, picked.get("country"), picked.get("region"), picked.get("city"))


def _parse_general(body: str) -> GeoAnswer | None:
    """Every accepted form, anywhere in the answer: one scan collects names, labelled values and pairs."""
    if _DIGIT_RE.search(body) is None:  # no number, no coordinates
        return None
    pairs: list[tuple[float, float]] = []
    lats: set[float] = set()
    lons: set[float] = set()
    names: dict[str, set[str]] = {}
    try:
        for m in _ANSWER_RE.finditer(body):
            kind = m.lastgroup
            if kind == "NAMED":
                field, double_quoted, single_quoted, bare = m.group("field", "nq", "ns", "name")
                name = (double_quoted or single_quoted or bare).strip(_NAME_EDGES)
                if name:
                    names.setdefault(_FIELD[field.lower()], set()).add(name)
            elif kind == "LAT" or kind == "LON":
                tag = "c" if kind == "LAT" else "d"
                if m.group(tag + "next") is not None:
                    raise _Invalid  # "Latitude: 38.72, 40.41"
                value, hemisphere = _value(m, tag)
                if hemisphere is not None and (hemisphere in "NS") != (kind == "LAT"):
                    raise _Invalid  # "Latitude: 9.1 W"
                (lats if kind == "LAT" else lons).add(value)
            elif kind == "LATLON":
                _add_distinct(pairs, _pair(m, "a", "b"))
            elif kind == "HEMI":
                _add_distinct(pairs, _pair(m, "e", "f"))
            elif kind == "BRACKET":
                _add_distinct(pairs, _pair(m, "g", "h"))
            else:  # BARE
                lat_sign, lat, lon_sign, lon = m.group("is", "id", "js", "jd")
                lat = -float(lat) if lat_sign in _MINUS else float(lat)
                lon = -float(lon) if lon_sign in _MINUS else float(lon)
                _add_distinct(pairs, (lat, lon))
    except (_Invalid, ValueError, OverflowError):
        return None
    if lats or lons:
        if len(lats) != 1 or len(lons) != 1:  # a lone or a repeated-but-different labelled value
            return None
        _add_distinct(pairs, (next(iter(lats)), next(iter(lons))))
    if len(pairs) != 1:
        return None
    lat, lon = pairs[0]
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        return None
    if not names:
        return GeoAnswer(lat, lon)
    picked = {field: next(iter(values)) if len(values) == 1 else None for field, values in names.items()}
    return GeoAnswer(lat, lon, picked.get("country"), picked.get("region"), picked.get("city"))


def parse_answer(text: str) -> GeoAnswer | None:
    """The one coordinate pair (and names) of a completion's final answer; None if there is not exactly one.

    Rewards share one parse per completion per step through `open_r1.rewards.batch`.
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS:
        return None
    body = answer_text(text)
    return None if body is None or not body.strip() else _parse_body(body)
