"""Generation engines: the transformers engine's sampling set-up and k guesses, the vLLM request format
(against a recording double of vLLM's API, since vLLM needs a GPU), and the backend choice."""

from __future__ import annotations

import sys
import types

import pytest

from open_r1.data import load_rows
from open_r1.evaluation import generation
from open_r1.evaluation.generation import Sampling, TransformersGenerator, VLLMGenerator, row_conversation
from open_r1.evaluation.loading import load_inference_processor, resolve_model


@pytest.fixture(scope="module")
def conversations(demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=4)  # rows of 1 and 4 images
    return [row_conversation(row, None, 12544) for row in rows]


def test_sampling_settings_are_checked():
    with pytest.raises(ValueError, match="needs sampling"):
        Sampling(num_guesses=3, temperature=0.0)
    with pytest.raises(ValueError, match="at least 1"):
        Sampling(num_guesses=0)


def test_transformers_engine_returns_k_guesses_per_prompt_and_ignores_the_checkpoints_sampling_defaults(
        tiny_model_dir, conversations):
    from open_r1.evaluation.loading import load_inference_model

    source = resolve_model(str(tiny_model_dir))
    model = load_inference_model(source)
    processor = load_inference_processor(source, min_pixels=3136, max_pixels=12544)
    assert model.generation_config.do_sample  # the tiny checkpoint asks for sampling ...
    greedy = TransformersGenerator(model, processor, Sampling(max_new_tokens=4))
    assert greedy.config.do_sample is False and greedy.config.repetition_penalty == 1.0  # ... greedy is greedy
    first, again = greedy(conversations), greedy(conversations)
    assert first == again and all(len(c) == 1 for c in first)
    sampled = TransformersGenerator(model, processor, Sampling(max_new_tokens=4, temperature=1.0, num_guesses=3))
    assert sampled.config.top_k == 0 and sampled.config.do_sample
    out = sampled(conversations)
    assert len(out) == len(conversations) and all(len(c) == 3 for c in out)
    assert any(len(set(c)) > 1 for c in out)  # samples, not copies


def test_vllm_engine_sends_the_chat_template_prompt_with_its_images(tiny_model_dir, conversations, monkeypatch):
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def generate(self, requests, params, use_tqdm=True):
            calls["requests"], calls["params"] = requests, params
            choice = types.SimpleNamespace
            return [choice(outputs=[choice(text=f"{i}-{j}") for j in range(params.n)]) for i in range(len(requests))]

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    processor = load_inference_processor(resolve_model(str(tiny_model_dir)), min_pixels=3136, max_pixels=12544)
    engine = VLLMGenerator(str(tiny_model_dir), processor, Sampling(max_new_tokens=7, temperature=0.5, num_guesses=2),
                           max_images=4, dtype=None, min_pixels=3136, max_pixels=12544)
    out = engine(conversations)
    assert out == [[f"{i}-0", f"{i}-1"] for i in range(len(conversations))]
    assert calls["init"]["limit_mm_per_prompt"] == {"image": 4}
    assert calls["init"]["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 12544}
    params = calls["params"]
    assert (params.n, params.temperature, params.max_tokens, params.repetition_penalty) == (2, 0.5, 7, 1.0)
    for conversation, request in zip(conversations, calls["requests"]):
        images = generation.conversation_images(conversation)
        assert request["multi_modal_data"]["image"] == images and len(images) in (1, 4)
        assert request["prompt"].count("<|image_pad|>") == len(images)
        assert request["prompt"].rstrip().endswith("<|im_start|>assistant")  # the generation prompt
        assert "First reason inside <think> </think>" in request["prompt"]  # the geo template


def test_backend_choice(monkeypatch):
    monkeypatch.setattr(generation, "vllm_available", lambda: False)
    assert generation.pick_backend("auto") == "transformers"
    with pytest.raises(RuntimeError, match="needs vLLM installed"):
        generation.pick_backend("vllm")
    monkeypatch.setattr(generation, "vllm_available", lambda: True)
    assert generation.pick_backend("auto") == "vllm"
