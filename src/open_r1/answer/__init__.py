"""The answer: the output format the prompt asks for (`format`) and the reader of answers as models write them
(`parse`). Rewards, data and evaluation read answers through here; it imports nothing else of geo-r."""

from open_r1.answer.episode import TOOL_ERROR_PREFIX, Episode, is_tool_error, read_episode
from open_r1.answer.format import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    DEFAULT_GEO_QUESTION,
    GENERIC_QUESTION_TEMPLATE,
    GEO_QUESTION_TEMPLATE,
    THINK_CLOSE,
    THINK_OPEN,
    build_question,
    render_answer,
    split_completion,
    wrap,
)
from open_r1.answer.parse import GeoAnswer, answer_text, parse_answer

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "DEFAULT_GEO_QUESTION",
    "GENERIC_QUESTION_TEMPLATE",
    "GEO_QUESTION_TEMPLATE",
    "THINK_CLOSE",
    "THINK_OPEN",
    "TOOL_ERROR_PREFIX",
    "Episode",
    "GeoAnswer",
    "answer_text",
    "build_question",
    "is_tool_error",
    "parse_answer",
    "read_episode",
    "render_answer",
    "split_completion",
    "wrap",
]
