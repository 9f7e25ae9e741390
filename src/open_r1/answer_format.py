"""The one output format of geo-r: what the prompt asks for, what SFT targets look like, and what the
format reward checks. Keeping all three here means they cannot drift apart.

A well-formed completion is a region-level reasoning chain followed by one answer block::

    <think>The script on the signs and the red soil point to South America. ... the country is Brazil,
    the region São Paulo, the city São Paulo.</think>
    <answer>Country: Brazil
    Region: São Paulo
    City: São Paulo
    Latitude: -23.5475
    Longitude: -46.6361</answer>
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

GEO_QUESTION_TEMPLATE = (
    "{question} First reason inside <think> </think> from the continent down to the country, region and "
    "city, citing what you see. Then give the final answer inside <answer> </answer> as lines 'Country:', "
    "'Region:', 'City:', 'Latitude:' and 'Longitude:' in decimal degrees."
)
GENERIC_QUESTION_TEMPLATE = (
    "{question} Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags."
)
DEFAULT_GEO_QUESTION = "Where was this photo taken?"


def build_question(question: str, is_geo: bool, template: str | None = None) -> str:
    """The user turn's text: the row's question inside the geo or generic template (or the caller's own)."""
    question = question.strip() or (DEFAULT_GEO_QUESTION if is_geo else "")
    template = template or (GEO_QUESTION_TEMPLATE if is_geo else GENERIC_QUESTION_TEMPLATE)
    return template.replace("{question}", question).strip()


_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def render_answer(
    lat: float,
    lon: float,
    country: str | None = None,
    region: str | None = None,
    city: str | None = None,
) -> str:
    """The text that goes inside <answer>: names first (when known), then the coordinates."""
    lines = []
    for key, value in (("Country", country), ("Region", region), ("City", city)):
        if value:
            lines.append(f"{key}: {value}")
    lines.append(f"Latitude: {lat:.4f}")
    lines.append(f"Longitude: {lon:.4f}")
    return "\n".join(lines)


def wrap(think: str, answer: str) -> str:
    """Join a reasoning chain and an answer body into a complete, well-formed completion."""
    return f"{THINK_OPEN}{think}{THINK_CLOSE}\n{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def split_completion(text: str) -> tuple[str | None, str | None]:
    """Return (think, answer) bodies of a completion; None for a part that is missing.

    Only the first think block and the last answer block count: a model that writes several answers
    is judged on its final word.
    """
    think = _THINK_RE.search(text)
    answers = _ANSWER_RE.findall(text)
    return (think.group(1) if think else None, answers[-1] if answers else None)


# --- format reward ----------------------------------------------------------------------------------------
# Checked here, next to the format it checks. Graded so a model is paid for each part it gets right and can
# learn the format a step at a time; the weights sum to 1.

FORMAT_WEIGHTS = {"think": 0.2, "answer": 0.2, "coordinates": 0.3, "chain": 0.3}
_W_THINK, _W_ANSWER, _W_COORDINATES, _W_CHAIN = (FORMAT_WEIGHTS[k] for k in ("think", "answer", "coordinates", "chain"))


class FormatParts(NamedTuple):
    """What a completion gets right about the format.

    think: it opens with exactly one non-empty <think> block.
    answer: exactly one <answer> block ends it, directly after the think block when there is one.
    coordinates: its final answer holds exactly one valid coordinate pair (geo.parse_answer).
    chain: share of country, region and city, as named in the answer, that the reasoning names in that order
        (a country must be a real one, a region or city at least two letters, so "a" earns nothing).
    """

    think: bool
    answer: bool
    coordinates: bool
    chain: float

    @property
    def score(self) -> float:
        """Weighted sum of the parts, in [0, 1]."""
        return (_W_THINK * self.think + _W_ANSWER * self.answer + _W_COORDINATES * self.coordinates
                + _W_CHAIN * self.chain)


_NO_PARTS = FormatParts(False, False, False, 0.0)


def _mentions(haystack: str, needle: str, start: int) -> int:
    """Position of `needle` as a whole word in `haystack` at or after `start`, or -1 (both casefolded)."""
    end = len(haystack)
    while True:
        i = haystack.find(needle, start)
        if i < 0:
            return -1
        j = i + len(needle)
        if (i == 0 or not haystack[i - 1].isalnum()) and (j == end or not haystack[j].isalnum()):
            return i
        start = i + 1


_TWO_LETTERS = re.compile(r"[^\W\d_].*?[^\W\d_]", re.DOTALL)
_geo_api: tuple | None = None


def _geo() -> tuple:
    """(parse_answer, country_code, MAX_COMPLETION_CHARS) from open_r1.geo, imported on first use: geo's
    parser imports this module, so a top-level import would be circular."""
    global _geo_api
    if _geo_api is None:
        from open_r1.geo.names import country_code
        from open_r1.geo.parse import MAX_COMPLETION_CHARS, parse_answer

        _geo_api = (parse_answer, country_code, MAX_COMPLETION_CHARS)
    return _geo_api


def region_chain(think: str, country: str | None, region: str | None, city: str | None) -> float:
    """Share of the answer's country, region and city that the reasoning names, in that order."""
    country_code = _geo()[1]
    hay = think.casefold()
    reached, pos = 0, 0
    for level, name in enumerate((country, region, city)):
        if not name:
            continue
        name = name.strip()
        if (country_code(name) is None) if level == 0 else _TWO_LETTERS.search(name) is None:
            continue
        found = _mentions(hay, name.casefold(), pos)
        if found >= 0:
            reached, pos = reached + 1, found
    return reached / 3.0


_UNPARSED = object()


def format_parts(text: str, parsed: Any = _UNPARSED) -> FormatParts:
    """Check each part of the region-reasoning format (see FormatParts).

    `parsed`: the completion's `geo.parse_answer(text)` when the caller already has it.
    """
    parse_answer, _, max_chars = _geo()
    if not isinstance(text, str) or len(text) > max_chars:
        return _NO_PARTS
    t_open, t_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    think = (
        t_open >= 0 and t_close > t_open and not text[:t_open].strip() and text.count(THINK_OPEN) == 1
        and text.count(THINK_CLOSE) == 1 and not text[t_open + len(THINK_OPEN):t_close].isspace()
        and t_close > t_open + len(THINK_OPEN)
    )
    a_open, a_close = text.find(ANSWER_OPEN), text.rfind(ANSWER_CLOSE)
    answer = (
        a_open >= 0 and a_close > a_open and text.count(ANSWER_OPEN) == 1 and text.count(ANSWER_CLOSE) == 1
        and not text[a_close + len(ANSWER_CLOSE):].strip()
        and (not think or (a_open > t_close and not text[t_close + len(THINK_CLOSE):a_open].strip()))
    )
    if parsed is _UNPARSED:
        parsed = parse_answer(text)
    if parsed is None:
        return FormatParts(think, answer, False, 0.0)
    chain = region_chain(text[t_open + len(THINK_OPEN):t_close], parsed.country, parsed.region, parsed.city) \
        if think else 0.0
    return FormatParts(think, answer, True, chain)


def format_score(text: str) -> float:
    """Format score in [0, 1]: the weighted parts of FormatParts."""
    return format_parts(text).score
