"""The embedded tiny Qwen2.5-VL: real architecture and processor, built offline, reloadable like a hub model."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from open_r1.tiny_model import FIRST_SPECIAL_ID, SPECIAL_TOKENS, build_tiny_model, build_tokenizer


def test_reloads_with_auto_classes_and_generates_for_mixed_image_counts(tiny_model_dir):
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["image_token_id"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    one = [{"type": "image", "image": Image.new("RGB", (112, 112), "red")}, {"type": "text", "text": "Where?"}]
    four = [{"type": "image", "image": Image.new("RGB", (112, 112), "blue")}] * 4 + [{"type": "text", "text": "Where?"}]
    batch = processor.apply_chat_template(
        [[{"role": "user", "content": one}], [{"role": "user", "content": four}]],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True,
    )
    text = processor.decode(batch["input_ids"][1])
    assert text.count("<|vision_start|>") == 4 and "<|im_start|>assistant\n" in text
    assert (batch["input_ids"][0, 0] == processor.tokenizer.pad_token_id).item(), "prompts must be left-padded"
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)


def test_build_is_deterministic_and_skips_an_identical_model(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tmp_path / "a", seed=3) == a
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime, "an identical model was rebuilt"
    b = build_tiny_model(tmp_path / "b", seed=3)
    wa = AutoModelForImageTextToText.from_pretrained(a).state_dict()
    wb = AutoModelForImageTextToText.from_pretrained(b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_real_qwen_vocabulary_keeps_the_released_special_token_ids():
    tokenizer = build_tokenizer("qwen")
    assert len(tokenizer) == FIRST_SPECIAL_ID + len(SPECIAL_TOKENS)
    for offset, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.convert_tokens_to_ids(token) == FIRST_SPECIAL_ID + offset
    ids = tokenizer("Hello world")["input_ids"]
    assert tokenizer.decode(ids) == "Hello world" and len(ids) == 2  # 'Hello', ' world' in Qwen2's BPE


def test_unknown_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab must be"):
        build_tokenizer("gpt2")
