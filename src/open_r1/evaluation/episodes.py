"""Tool-using episodes at inference: the model's turn is generated, its tool calls (Qwen2.5's `<tool_call>` format,
parsed by TRL's `parse_response` as in training) run with the tools bound to the row's photo, their results
appended as tool turns (a zoom's crop as an image), and the model goes on, up to `max_rounds` rounds of calls.
Training runs the same loop inside TRL's GRPOTrainer; here it is written out for `eval_geo` and `predict`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import GenerationConfig, PreTrainedModel, ProcessorMixin

from open_r1.answer.episode import read_episode
from open_r1.compat import parse_response
from open_r1.errors import ArgumentError
from open_r1.evaluation.generation import Conversation, Sampling
from open_r1.modeling.chat_template import enable_tool_calls
from open_r1.tools import ToolSet

logger = logging.getLogger(__name__)

TurnGenerator = Callable[[Sequence[Conversation]], list[tuple[list[int], list[int]]]]


@dataclass
class Episode:
    """One conversation's episode: the model's and the tools' turns, in order."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def calls(self) -> int:
        return read_episode(self.messages).calls

    @property
    def text(self) -> str:
        """What the metrics read: every assistant turn, the answer from after the last tool turn."""
        return read_episode(self.messages).text


def episode_turns(episode: Episode) -> list[tuple[str, list[Image.Image]]]:
    """(line, images) per turn: the model's text, each call it makes, each tool's result (an image as its size,
    the image itself beside the line)."""
    turns: list[tuple[str, list[Image.Image]]] = []
    for message in episode.messages:
        if message["role"] == "tool":
            content = message["content"]
            images: list[Image.Image] = []
            if isinstance(content, list):
                texts = [p.get("text", "") for p in content if p.get("type") == "text"]
                images = [p["image"] for p in content if p.get("type") == "image"]
                shown = "; ".join([*(f"image {im.width}x{im.height}" for im in images), *texts])
            else:
                shown = str(content)
            turns.append((f"[{message.get('name')}] -> {shown}", images))
            continue
        if message.get("content"):
            turns.append((f"model: {message['content']}", []))
        for call in message.get("tool_calls") or ():
            function = call["function"]
            turns.append((f"model calls {function['name']}({json.dumps(function.get('arguments'))})", []))
    return turns


def run_call(tools: Mapping[str, Callable[..., Any]], call: dict[str, Any]) -> tuple[str, Any]:
    """(tool name, result) of one parsed call; like TRL, a missing tool or a raising one answers {'error': ...}."""
    function = call.get("function", {})
    name = function.get("name", "unknown")
    try:
        if name not in tools:
            raise ValueError(f"Tool {name} not found.")
        return name, tools[name](**(function.get("arguments") or {}))
    except Exception as err:  # a tool call is the model's input: any failure is its answer, not ours
        return name, {"error": str(err)}


def run_episodes(conversations: Sequence[Conversation], bound: Sequence[Mapping[str, Callable[..., Any]]],
                 generate_turns: TurnGenerator, tokenizer: Any, schemas: list, max_rounds: int) -> list[Episode]:
    """Generate until every conversation answers without calling a tool or has had `max_rounds` rounds of calls.
    `generate_turns` returns (prompt ids, completion ids) per conversation, the prompt rendered with `schemas`."""
    episodes = [Episode() for _ in conversations]
    active = list(range(len(conversations)))
    for round_ in range(max_rounds + 1):
        if not active:
            break
        outputs = generate_turns([list(conversations[i]) + episodes[i].messages for i in active])
        still = []
        for i, (prompt_ids, ids) in zip(active, outputs):
            message = parse_response(tokenizer, ids, prefix=prompt_ids, tools=schemas)
            message = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
            episodes[i].messages.append(message)
            if not message.get("tool_calls") or round_ == max_rounds:
                episodes[i].done = True
                continue
            for call in message["tool_calls"]:
                name, result = run_call(bound[i], call)
                content = result if isinstance(result, list) else str(result)
                episodes[i].messages.append({"role": "tool", "name": name, "content": content})
            still.append(i)
        active = still
    return episodes


class ToolEpisodeGenerator:
    """The `Generator` of evaluation for runs with tools (transformers `generate`, one guess): each row's
    completion is its episode's text, and `episodes` keeps the last batch's episodes (calls, crops)."""

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin, sampling: Sampling, toolset: ToolSet,
                 max_rounds: int = 3):
        if sampling.num_guesses != 1:
            raise ArgumentError("tool episodes are evaluated with one guess per image (--num_guesses 1)")
        self.model, self.processor, self.toolset, self.max_rounds = model, enable_tool_calls(processor), toolset, max_rounds
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.schemas = toolset.schemas()
        self.config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens, do_sample=not sampling.greedy,
            temperature=None if sampling.greedy else sampling.temperature,
            top_p=None if sampling.greedy else sampling.top_p, top_k=None if sampling.greedy else 0,
            repetition_penalty=1.0, eos_token_id=model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        self.rows: list[Mapping[str, Any]] = []
        self.episodes: list[Episode] = []
        torch.manual_seed(sampling.seed)

    @torch.inference_mode()
    def generate_turns(self, conversations: Sequence[Conversation]) -> list[tuple[list[int], list[int]]]:
        inputs = self.processor.apply_chat_template(
            list(conversations), tools=self.schemas, add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt", processor_kwargs={"padding": True},
        ).to(self.model.device)
        output = self.model.generate(**inputs, generation_config=self.config)
        width = inputs["input_ids"].shape[1]
        pad = self.tokenizer.pad_token_id
        turns = []
        for prompt, mask, full in zip(inputs["input_ids"], inputs["attention_mask"], output):
            ids = [t for t in full[width:].tolist() if t != pad]
            turns.append((prompt[mask.bool()].tolist(), ids))
        return turns

    def with_rows(self, rows: Sequence[Mapping[str, Any]]) -> ToolEpisodeGenerator:
        """Bind the next call's conversations to these rows (their `image_paths`, for zoom)."""
        self.rows = list(rows)
        return self

    def __call__(self, conversations: Sequence[Conversation]) -> list[list[str]]:
        if len(self.rows) != len(conversations):
            raise ValueError("ToolEpisodeGenerator: call with_rows(rows) with the batch's rows first")
        bound = [self.toolset.bind(row) for row in self.rows]
        self.episodes = run_episodes(conversations, bound, self.generate_turns, self.tokenizer, self.schemas,
                                     self.max_rounds)
        self.rows = []
        return [[episode.text] for episode in self.episodes]


def save_episode(episode: Episode, folder: Path, name: str) -> Path:
    """Write an episode to `folder/<name>.json`, each image of a tool turn (a zoom's crop) as
    `<name>-<turn>-<k>.png` beside it and named in the JSON; return the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    messages = []
    for turn, message in enumerate(episode.messages):
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for k, part in enumerate(content):
                if part.get("type") == "image":
                    path = folder / f"{safe}-{turn}-{k}.png"
                    part["image"].save(path)
                    parts.append({"type": "image", "path": str(path)})
                else:
                    parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    path = folder / f"{safe}.json"
    path.write_text(json.dumps(messages, ensure_ascii=False, indent=2, default=str) + "\n")
    return path
