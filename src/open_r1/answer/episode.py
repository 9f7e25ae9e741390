"""A tool-using episode as TRL hands it to the rewards: assistant turns that may end in tool calls, the tool turns
that answer them, and the final assistant turn. What counts as the answer, a call and a failed call is decided here
once, so the rewards, the logs and evaluation agree. The answer is read after the last tool turn: an `<answer>`
written before a call is a draft the model chose to check. A leaf: it imports nothing of geo-r.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Tools answer a call they cannot carry out with a short text starting with this (never an exception), and
# TRL itself answers an unknown tool or bad arguments with {'error': ...}.
TOOL_ERROR_PREFIX = "Error:"
_TRL_ERROR = re.compile(r"^\s*\{\s*['\"]error['\"]\s*:")
# A call the parser could not read is left in the text: TRL falls back to the plain decode, and the call's
# JSON (or its tags, where they are not special tokens) stays in the assistant's content.
_CALL_TAG = re.compile(r"<tool_call>")
_CALL_JSON = re.compile(r"\{\s*\"name\"\s*:\s*\"[^\"]*\"\s*,\s*\"arguments\"")
_ANSWER_BLOCK = re.compile(r"<answer>.*?</answer>", re.DOTALL)

__all__ = ["TOOL_ERROR_PREFIX", "Episode", "is_tool_error", "read_episode"]


def _unparsed_calls(text: str) -> int:
    return max(len(_CALL_TAG.findall(text)), len(_CALL_JSON.findall(text)))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(
            part["text"] for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def is_tool_error(content: Any) -> bool:
    """Whether a tool turn's content reports a failed call (ours: 'Error: ...'; TRL's: {'error': ...})."""
    text = _text(content).lstrip()
    return text.startswith(TOOL_ERROR_PREFIX) or bool(_TRL_ERROR.match(text))


@dataclass(frozen=True)
class Episode:
    """What an episode did: the text rewards read, the calls it made and how many failed or went unparsed."""

    text: str  # every assistant turn's text in order, <answer> blocks before the last tool turn removed
    calls: int  # tool calls made (parsed and executed)
    failed_calls: int  # calls whose tool turn reports an error
    unparsed_calls: int  # tool calls written in a form the parser could not read (left in the text)
    tools_used: tuple[str, ...]  # names of the tools called, in order

    @property
    def invalid_calls(self) -> int:
        return self.failed_calls + self.unparsed_calls


def read_episode(completion: Any) -> Episode:
    """Read a completion: a plain string (no tools), or TRL's list of assistant and tool messages."""
    if isinstance(completion, str):
        return Episode(completion, 0, 0, _unparsed_calls(completion), ())
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return Episode("", 0, 0, 0, ())
    messages = [m for m in completion if isinstance(m, dict)]
    last_tool = max((i for i, m in enumerate(messages) if m.get("role") == "tool"), default=-1)
    texts, calls, failed, unparsed, names = [], 0, 0, 0, []
    for i, message in enumerate(messages):
        role = message.get("role", "assistant")
        if role == "tool":
            failed += is_tool_error(message.get("content"))
            continue
        if role != "assistant":
            continue
        text = _text(message.get("content"))
        unparsed += _unparsed_calls(text)
        if i < last_tool:
            text = _ANSWER_BLOCK.sub("", text)
        texts.append(text)
        for call in message.get("tool_calls") or ():
            calls += 1
            function = call.get("function", call) if isinstance(call, dict) else {}
            names.append(str(function.get("name", "")) if isinstance(function, dict) else "")
    return Episode("\n".join(t for t in texts if t) if last_tool >= 0 else "".join(texts), calls, failed,
                   unparsed, tuple(names))
