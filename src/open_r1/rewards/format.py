"""Grading of the region-reasoning format (`open_r1.answer.format`): which parts of it a completion gets right.

Graded so a model is paid for each part it gets right and can learn the format a step at a time; the weights
sum to 1. The `format` reward (`rewards/geo.py`) pays `FormatParts.score`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from open_r1.answer.format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from open_r1.answer.parse import MAX_COMPLETION_CHARS, parse_answer
from open_r1.geo.names import country_code

FORMAT_WEIGHTS = {"think": 0.2, "answer": 0.2, "coordinates": 0.3, "chain": 0.3}
_W_THINK, _W_ANSWER, _W_COORDINATES, _W_CHAIN = (FORMAT_WEIGHTS[k] for k in ("think", "answer", "coordinates", "chain"))


class FormatParts(NamedTuple):
    """What a completion gets right about the format.

    think: it opens with exactly one non-empty <think> block.
    answer: exactly one <answer> block ends it, directly after the think block when there is one.
    coordinates: its final answer holds exactly one valid coordinate pair (answer.parse.parse_answer).
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
_new_parts = tuple.__new__  # FormatParts' own __new__ is Python code; this runs for every completion of a step


_TAG_RE = re.compile(r"</?(?:think|answer)>")
# One think block, then one answer block ending the text, neither holding a '<': well-formed at a glance.
# `(?=(?P<t>...))(?P=t)` is an atomic group, so a text that fails does not backtrack through the reasoning.
_WELL_FORMED_RE = re.compile(r"\s*<think>(?=(?P<think>[^<]*))(?P=think)</think>\s*<answer>[^<]*</answer>\s*")
_NON_SPACE = re.compile(r"\S")
_TWO_LETTERS = re.compile(r"[^\W\d_].*?[^\W\d_]", re.DOTALL)


def _chain_needle(level: int, name: str | None) -> tuple[str, str] | None:
    """The name as written (stripped) and casefolded, or None for a name that earns nothing: an unknown
    country, or a region/city of fewer than two letters."""
    name = name.strip() if name else ""
    if not name:
        return None
    if level == 0:
        if country_code(name) is None:
            return None
    elif _TWO_LETTERS.search(name) is None:
        return None
    return name, name.casefold()


@lru_cache(maxsize=65536)
def _chain_needles(country: str | None, region: str | None, city: str | None) -> tuple[tuple[str, ...], ...]:
    """(names as written, names casefolded) of the levels that can earn chain credit, in chain order."""
    found = [n for n in (_chain_needle(0, country), _chain_needle(1, region), _chain_needle(2, city)) if n]
    return tuple(n[0] for n in found), tuple(n[1] for n in found)


def _reach(hay: str, needles: tuple[str, ...], start: int, end: int) -> int:
    """How many of `needles` occur in hay[start:end] as whole words, in order (earliest match first)."""
    reached, pos = 0, start
    for needle in needles:
        i = hay.find(needle, pos, end)
        while i >= 0:  # inlined boundary check: this runs for every completion of every step
            j = i + len(needle)
            if (i == start or not hay[i - 1].isalnum()) and (j == end or not hay[j].isalnum()):
                reached, pos = reached + 1, i
                break
            i = hay.find(needle, i + 1, end)
    return reached


def chain_share(think: str, country: str | None, region: str | None, city: str | None,
                 span: tuple[int, int] | None = None) -> float:
    """Share of the answer's country, region and city that the reasoning names as whole words, in that order,
    ignoring case. `span`: the reasoning is think[span[0]:span[1]] (no copy of it is made)."""
    written, folded = _chain_needles(country, region, city)
    if not written:
        return 0.0
    start, end = span if span is not None else (0, len(think))
    # Most reasoning names the places as the answer spells them: an exact-case search that finds every one
    # in order is the answer (a case-blind search would find them too). Otherwise compare casefolded texts.
    reached = _reach(think, written, start, end)
    if reached < len(written):
        hay = think[start:end].casefold()
        reached = _reach(hay, folded, 0, len(hay))
    return reached / 3.0


_UNPARSED = object()


def _blank(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is only whitespace (without copying the slice)."""
    return _NON_SPACE.search(text, start, end) is None


def _block(found: dict[str, list[int]], open_tag: str, close_tag: str) -> tuple[int, int] | None:
    """(start of open tag, start of close tag) of a block whose tags each occur exactly once, in order."""
    opens, closes = found.get(open_tag, ()), found.get(close_tag, ())
    if len(opens) == 1 and len(closes) == 1 and opens[0] < closes[0]:
        return opens[0], closes[0]
    return None


def format_parts(text: str, parsed: Any = _UNPARSED) -> FormatParts:
    """Check each part of the region-reasoning format (see FormatParts).

    `parsed`: the completion's `answer.parse.parse_answer(text)` when the caller already has it.
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS:
        return _NO_PARTS
    whole = _WELL_FORMED_RE.fullmatch(text)
    if whole is not None:  # the usual case, in one scan
        think_span = whole.span(1)
        think = _NON_SPACE.search(text, think_span[0], think_span[1]) is not None
        answer = True
    else:
        found: dict[str, list[int]] = {}
        for m in _TAG_RE.finditer(text):  # one scan for all four tags
            found.setdefault(m.group(), []).append(m.start())
        think_at = _block(found, THINK_OPEN, THINK_CLOSE)
        answer_at = _block(found, ANSWER_OPEN, ANSWER_CLOSE)
        blank = _blank
        think = think_at is not None and blank(text, 0, think_at[0]) and \
            not blank(text, think_at[0] + len(THINK_OPEN), think_at[1])
        answer = answer_at is not None and blank(text, answer_at[1] + len(ANSWER_CLOSE), len(text)) and (
            not think or (answer_at[0] > think_at[1] and blank(text, think_at[1] + len(THINK_CLOSE), answer_at[0]))
        )
        think_span = (think_at[0] + len(THINK_OPEN), think_at[1]) if think else None
    if parsed is _UNPARSED:
        parsed = parse_answer(text)
    if parsed is None:
        return _new_parts(FormatParts, (think, answer, False, 0.0))
    chain = chain_share(text, parsed.country, parsed.region, parsed.city, think_span) if think else 0.0
    return _new_parts(FormatParts, (think, answer, True, chain))


def format_score(text: str) -> float:
    """Format score in [0, 1]: the weighted parts of FormatParts."""
    return format_parts(text).score
