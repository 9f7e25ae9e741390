"""The one output format of geo-r: what the prompt asks for and how an answer is written, a `<think>` chain
followed by one `<answer>` block of country, region, city, latitude and longitude. SFT targets are built from it,
the parser reads it and the format reward grades it, so none of them can drift apart. A leaf: it imports nothing
of geo-r.
"""

from __future__ import annotations

import re

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
