"""SFT cold start with tool calls: Chain-of-Region targets that zoom on a row's clue and look up the city,
learnt natively (TRL's SFTTrainer on whole episodes, the assistant turns supervised, the crop an image of the
tool turn) and exported to LLaMA-Factory's sharegpt tool format."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from trl import ModelConfig, SFTConfig

from conftest import geo_row, write_jsonl
from open_r1.answer import read_episode
from open_r1.data import load_rows
from open_r1.data.rows import DataError
from open_r1.data.sft_targets import sft_episodes
from open_r1.data.to_llamafactory import export
from open_r1.modeling.loading import load_model, load_processor
from open_r1.rewards import build_reward_funcs
from open_r1.tools import build_toolset
from open_r1.tools.episodes import run_tool_turns
from open_r1.training.sft import build_sft_trainer, sft_dataset, tool_episodes

LISBON = (38.7167, -9.1333)


def rows_with_clues(tmp_path, clue=(0.5, 0.5, 0.75, 0.75)):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (320, 240), (200, 200, 200)).save(folder / "a.png")
    Image.new("RGB", (320, 240), (90, 90, 90)).save(folder / "b.png")
    path = write_jsonl(tmp_path / "rows.jsonl", [
        geo_row("with-clue", "a.png", *LISBON, country="PT", region="Lisbon", city="Lisbon", clue_box=list(clue)),
        geo_row("no-clue", "b.png", *LISBON, country="PT", region="Lisbon", city="Lisbon"),
        geo_row("at-sea", "b.png", 0.0, -30.0),
    ])
    return load_rows(str(path), str(folder))


def test_targets_zoom_on_the_clue_and_look_up_the_city(tmp_path):
    rows = rows_with_clues(tmp_path)
    zoom_lookup, lookup_only, plain = sft_episodes(rows, ["zoom", "lookup"])
    assert [m["role"] for m in zoom_lookup] == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert zoom_lookup[0]["tool_calls"][0]["function"] == {
        "name": "zoom", "arguments": {"x1": 0.5, "y1": 0.5, "x2": 0.75, "y2": 0.75}}
    assert zoom_lookup[2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": {"place": "Lisbon, Portugal"}}
    assert [m["role"] for m in lookup_only] == ["assistant", "tool", "assistant"]
    assert len(plain) == 1 and "tool_calls" not in plain[0]  # no city: nothing to look up, no clue to zoom on
    assert [len(e) for e in sft_episodes(rows, ["zoom"])] == [3, 1, 1]
    # the episode, tools run, earns the format and distance rewards like a plain target
    filled = [run_tool_turns(e, build_toolset(["zoom", "lookup"]).bind({"image_paths": r.image_paths}))
              for r, e in zip(rows, (zoom_lookup, lookup_only))]
    assert isinstance(filled[0][1]["content"], list) and "Lisbon, Lisbon, Portugal" in filled[0][3]["content"]
    funcs = build_reward_funcs(["format", "haversine", "tool_use"])
    for func in funcs:
        values = func([None, None], filled, lat=[LISBON[0]] * 2, lon=[LISBON[1]] * 2)
        assert values == pytest.approx([1.0, 1.0] if func.__name__ != "tool_use" else [0.0, 0.0]), func.__name__
    assert read_episode(filled[0]).calls == 2


def test_a_malformed_clue_box_names_the_row(tmp_path):
    rows = rows_with_clues(tmp_path, clue=(0.6, 0.5, 0.2, 0.75))
    with pytest.raises(DataError, match=r"rows.jsonl:1: field 'clue_box'"):
        sft_episodes(rows, ["zoom"])


def test_llamafactory_export_writes_function_calls_observations_and_the_crop(tmp_path):
    rows = rows_with_clues(tmp_path)
    toolset = build_toolset(["zoom", "lookup"])
    episodes = [run_tool_turns(e, toolset.bind({"image_paths": r.image_paths}))
                for r, e in zip(rows, sft_episodes(rows, toolset.names))]
    from transformers.utils import get_json_schema

    schemas = [get_json_schema(t) for t in toolset.schemas()]
    path = export(rows, tmp_path / "lf", dataset_name="tools", episodes=episodes, tools=schemas)
    first, second, third = [json.loads(line) for line in path.read_text().splitlines()]
    assert [t["from"] for t in first["conversations"]] == ["human", "function_call", "observation", "function_call",
                                                           "observation", "gpt"]
    call = first["conversations"][1]["value"]
    assert call.endswith('\n<tool_call>\n{"name": "zoom", "arguments": {"x1": 0.5, "y1": 0.5, "x2": 0.75, "y2": 0.75}}'
                         "\n</tool_call>")
    assert first["conversations"][2]["value"].startswith("<image>view 0")
    assert len(first["images"]) == 2 and Image.open(first["images"][1]).size[0] >= 28  # the photo, then the crop
    assert "Lisbon, Lisbon, Portugal: latitude 38.7167" in first["conversations"][4]["value"]
    assert json.loads(third["tools"]) == schemas and [t["from"] for t in third["conversations"]] == ["human", "gpt"]
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())["tools"]
    assert info["columns"] == {"messages": "conversations", "images": "images", "tools": "tools"}
    assert len(second["images"]) == 1


def test_native_sft_supervises_the_assistant_turns_and_sees_the_crop(tmp_path, tiny_model_dir):
    rows = rows_with_clues(tmp_path)
    toolset = build_toolset(["zoom", "lookup"], max_pixels=112 * 112)
    processor = load_processor(str(tiny_model_dir), max_pixels=112 * 112)
    dataset = tool_episodes(sft_dataset(rows, toolset=toolset), processor, toolset, 112 * 112)
    args = SFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=3, max_steps=1, max_length=None,
                     report_to=[], use_cpu=True, bf16=False, save_strategy="no")
    model = load_model(ModelConfig(model_name_or_path=str(tiny_model_dir)))
    trainer = build_sft_trainer(model, processor, args, train_dataset=dataset)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    tokenizer = processor.tokenizer
    first = tokenizer.decode(batch["input_ids"][0])
    assert first.count("<|vision_start|>") == 2 and "# Tools" in first  # the photo and the crop; the tool list
    supervised = tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert '<tool_call>\n{"name": "zoom"' in supervised and "<answer>" in supervised
    assert "<tool_response>" not in supervised and "# Tools" not in supervised and "Where is this" not in supervised
    loss = model(**batch).loss
    assert torch.isfinite(loss)
