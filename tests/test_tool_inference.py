"""The inference tool loop of `eval_geo` and `predict`: the model's calls are parsed as in training, run with
the tools bound to the row's photo, answered in tool turns, and the episode (crops included) saved; a call to a
missing tool is answered like TRL answers it; the number of rounds is capped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from open_r1.evaluation.episodes import run_episodes, save_episode
from open_r1.modeling.chat_template import enable_tool_calls
from open_r1.modeling.loading import load_processor
from open_r1.tools import build_toolset

ANSWER = "<answer>Latitude: 38.7167\nLongitude: -9.1333</answer>"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return enable_tool_calls(load_processor(str(tiny_model_dir))).tokenizer


def scripted(tokenizer, turns_by_conversation):
    """A stand-in for the model: conversation i answers its scripted turns in order, and every prompt it gets
    is recorded (what the model would see)."""
    seen = []

    def generate_turns(conversations):
        out = []
        for conversation in conversations:
            i = conversation[0]["index"]
            seen.append(conversation)
            turn = turns_by_conversation[i].pop(0)
            out.append((tokenizer("<|im_start|>assistant\n")["input_ids"], tokenizer(turn + "<|im_end|>")["input_ids"]))
        return out

    return generate_turns, seen


def test_calls_run_on_the_rows_photo_and_the_final_answer_is_read(tmp_path, tokenizer):
    photo = np.zeros((100, 200, 3), dtype=np.uint8)
    photo[:, 100:] = 255  # right half white
    Image.fromarray(photo).save(tmp_path / "p.png")
    toolset = build_toolset(["zoom", "lookup"])
    zoom = '<think>a sign\n<tool_call>\n{"name": "zoom", "arguments": {"x1": 0.6, "y1": 0.1, "x2": 0.9, "y2": 0.9}}\n</tool_call>'
    lookup = '<tool_call>\n{"name": "lookup", "arguments": {"place": "Lisbon"}}\n</tool_call>'
    search = '<tool_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>'
    turns = {0: [zoom, lookup, "Lisbon.</think>\n" + ANSWER], 1: [search, "</think>" + ANSWER], 2: [zoom] * 5}
    generate_turns, seen = scripted(tokenizer, turns)
    conversations = [[{"role": "user", "content": "Where?", "index": i}] for i in range(3)]
    bound = [toolset.bind({"image_paths": [str(tmp_path / "p.png")]}) for _ in range(3)]
    episodes = run_episodes(conversations, bound, generate_turns, tokenizer, toolset.schemas(), max_rounds=2)

    first = episodes[0]
    assert [m["role"] for m in first.messages] == ["assistant", "tool", "assistant", "tool", "assistant"]
    crop = first.messages[1]["content"][0]["image"]
    assert np.asarray(crop).min() > 200  # the zoom box lies in the white half of this row's photo
    assert "Lisbon, Lisbon, Portugal" in first.messages[3]["content"]
    assert first.calls == 2 and first.text.endswith(ANSWER)
    # the model's second turn saw its call and the crop
    assert seen[3][1]["tool_calls"][0]["function"]["name"] == "zoom" and seen[3][2]["role"] == "tool"

    assert episodes[1].messages[1]["content"] == "{'error': 'Tool search not found.'}"
    assert [m["role"] for m in episodes[2].messages] == ["assistant", "tool"] * 2 + ["assistant"]  # capped at 2 rounds

    path = save_episode(first, tmp_path / "episodes", "row/1")
    saved = json.loads(path.read_text())
    image_part = saved[1]["content"][0]
    assert image_part["type"] == "image" and Image.open(image_part["path"]).size == crop.size
