"""Tool episodes as SFT trains on them: the target's tool turns filled by running the very tools GRPO runs,
on the row's own photo, when a row is read (`EpisodeDecoder`, a `with_transform`), so a crop is never stored
and always matches what `zoom` returns in training and inference."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from open_r1.data.images import load_image
from open_r1.tools.registry import ToolSet

__all__ = ["EpisodeDecoder", "run_tool_turns"]


def run_tool_turns(messages: list[dict[str, Any]], tools: Mapping[str, Callable[..., Any]]) -> list[dict[str, Any]]:
    """The messages with every tool turn whose content is None replaced by what the call before it returns
    (TRL's rule for a tool's result: a list of content parts stays as it is, anything else becomes text)."""
    out, pending = [], []
    for message in messages:
        if message.get("role") == "assistant":
            pending = [c["function"] for c in message.get("tool_calls") or ()]
        elif message.get("role") == "tool" and message.get("content") is None:
            if not pending:
                raise ValueError(f"tool turn {message.get('name')!r} follows no tool call")
            call = pending.pop(0)
            result = tools[call["name"]](**call["arguments"])
            message = {**message, "content": result if isinstance(result, list) else str(result)}
        out.append(message)
    return out


class EpisodeDecoder:
    """A picklable `with_transform` function: decodes each accessed row's images (bounded by `max_pixels`) and
    turns its `episode` (JSON: the prompt and the target's turns) into TRL's `messages`, the tool turns filled
    and the tool list as the system turn (`modeling.chat_template.tools_system_text`)."""

    def __init__(self, toolset: ToolSet, max_pixels: int | None, system_text: str):
        self.toolset = toolset
        self.max_pixels = max_pixels
        self.system_text = system_text

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        batch["images"], batch["messages"] = [], []
        for paths, source, episode in zip(batch["image_paths"], batch["source"], batch["episode"]):
            images = [load_image(path, self.max_pixels, where=source) for path in paths]
            tools = self.toolset.bind({"image_paths": paths, "images": images})
            messages = run_tool_turns(json.loads(episode), tools)
            batch["images"].append(images)
            batch["messages"].append([{"role": "system", "content": self.system_text}, *messages])
        return batch
