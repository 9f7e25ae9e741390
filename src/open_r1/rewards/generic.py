"""Rewards for the non-geo rows a jsonl file may carry (Geo-R's CLEVR-style counting and referring-expression
examples), where the row's `solution` is the gpt answer. Rows without a solution get None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from open_r1.answer.parse import answer_text
from open_r1.rewards.batch import batch_of, log_once
from open_r1.rewards.registry import register

__all__ = ["accuracy_reward", "box_iou", "boxes_in", "iou_reward", "normalise_answer", "answers_match"]

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w])")
_FULL_NUMBER_RE = re.compile(rf"\s*{_NUMBER}\s*%?\s*")
_BOX_RE = re.compile(rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
_EDGE_PUNCT = " \t\r\n.,;:!?\"'`()[]{}"


def _final(text: str) -> str | None:
    """The final answer of a completion or solution: its <answer> block, else what follows the reasoning."""
    body = answer_text(text)
    return body.strip() if body is not None and body.strip() else None


def normalise_answer(text: str) -> str:
    """Case, surrounding punctuation and inner whitespace do not change an answer."""
    return " ".join(text.casefold().strip(_EDGE_PUNCT).split())


def _as_number(text: str) -> float | None:
    if not _FULL_NUMBER_RE.fullmatch(text):
        return None
    try:
        return float(text.strip().rstrip("%").strip().replace(",", ""))
    except ValueError:
        return None


def answers_match(answer: str, solution: str) -> bool:
    """Exact match after normalisation; for a numeric solution, also the answer's one and only number."""
    if normalise_answer(answer) == normalise_answer(solution):
        return True
    target = _as_number(solution)
    if target is None:
        return False
    numbers = _NUMBER_RE.findall(answer)
    if len(numbers) != 1:  # "3 or 4" names two answers
        return False
    value = float(numbers[0].replace(",", ""))
    return math.isfinite(value) and math.isclose(value, target, rel_tol=1e-6, abs_tol=1e-9)


@register("accuracy")
def accuracy_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1 if the final answer matches the row's `solution` (normalised text, or the same number), else 0."""
    batch = batch_of(completions)
    solutions = kwargs.get("solution") or [None] * len(batch)
    out: list[float | None] = []
    for text, solution in zip(batch.texts, solutions):
        target = _final(solution) if isinstance(solution, str) else None
        if target is None:
            out.append(None)
            continue
        answer = _final(text)
        out.append(1.0 if answer is not None and answers_match(answer, target) else 0.0)
    _log_share(batch, kwargs, "generic/accuracy", out)
    return out


def boxes_in(text: str) -> list[tuple[float, float, float, float]]:
    """Every [x1, y1, x2, y2] box written in a text."""
    return [tuple(float(v.replace(",", "")) for v in m) for m in _BOX_RE.findall(text[:4096])]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes; 0 for an empty or inverted box."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    area_a, area_b = (ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1)
    if not (ax2 > ax1 and ay2 > ay1 and bx2 > bx1 and by2 > by1) or not math.isfinite(area_a + area_b):
        return 0.0
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    return inter / (area_a + area_b - inter)


@register("iou")
def iou_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """IoU of the one box in the final answer with the box in `solution` (referring-expression rows).
    An answer with several boxes gets 0: listing candidates must not pay."""
    batch = batch_of(completions)
    solutions = kwargs.get("solution") or [None] * len(batch)
    out: list[float | None] = []
    for text, solution in zip(batch.texts, solutions):
        target = boxes_in(_final(solution) or "") if isinstance(solution, str) else []
        if not target:
            out.append(None)
            continue
        answer = _final(text)
        boxes = boxes_in(answer) if answer is not None else []
        out.append(box_iou(boxes[0], target[0]) if len(boxes) == 1 else 0.0)
    _log_share(batch, kwargs, "generic/iou", out)
    return out


def _log_share(batch, kwargs: dict[str, Any], name: str, rewards: list[float | None]) -> None:
    scored = [r for r in rewards if r is not None]
    if scored:
        log_once(batch, kwargs.get("log_metric"), name, sum(scored) / len(scored))
