"""Prompts and batched generation for evaluation and prediction.

The prompt and image bounds are the trainer's own (`prompt_messages`, then TRL's `prepare_multimodal_messages`).
vLLM runs when installed and a GPU is present, transformers' `generate` otherwise. Both sample with TRL's GRPO
defaults, not a checkpoint's generation_config.json, so a model is judged on the distribution it was trained on;
temperature 0 is greedy.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image
from transformers import GenerationConfig, PreTrainedModel, ProcessorMixin
from trl import prepare_multimodal_messages

from open_r1.answer import build_question
from open_r1.data.dataset import prompt_messages
from open_r1.data.images import load_image
from open_r1.data.rows import Row
from open_r1.errors import ArgumentError

logger = logging.getLogger(__name__)

Conversation = list[dict[str, Any]]


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: `num_guesses` per prompt, greedy when `temperature` is 0."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    num_guesses: int = 1
    seed: int = 42

    def __post_init__(self) -> None:
        if self.num_guesses < 1:
            raise ArgumentError(f"--num_guesses must be at least 1, got {self.num_guesses}")
        if self.temperature < 0:
            raise ArgumentError(f"--temperature must be >= 0, got {self.temperature}")
        if self.num_guesses > 1 and self.temperature == 0:
            raise ArgumentError("--num_guesses > 1 needs sampling: give --temperature > 0 (greedy guesses are identical)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def geo_messages(question: str, template: str | None = None) -> Conversation:
    """The user turn for a photo with no row behind it (prediction); equal to `prompt_messages` of a geo row."""
    return [{"role": "user", "content": build_question(question, is_geo=True, template=template)}]


def with_images(messages: Conversation, image_paths: Sequence[str], max_pixels: int | None, where: str) -> Conversation:
    """The conversation with its images decoded (bounded by `max_pixels`) and placed before the text."""
    images = [load_image(path, max_pixels, where=where) for path in image_paths]
    return prepare_multimodal_messages(messages, images=images)


def row_conversation(row: Row, template: str | None, max_pixels: int | None) -> Conversation:
    """The exact GRPO prompt of a dataset row, images included."""
    return with_images(prompt_messages(row, template), row.image_paths, max_pixels, row.source)


def conversation_images(conversation: Conversation) -> list[Image.Image]:
    return [part["image"] for message in conversation if isinstance(message["content"], list)
            for part in message["content"] if part.get("type") == "image"]


class Generator(Protocol):
    def __call__(self, conversations: Sequence[Conversation]) -> list[list[str]]:
        """`num_guesses` completions per conversation."""
        ...


class TransformersGenerator:
    """Batched `model.generate` over left-padded prompts; k guesses per prompt via `num_return_sequences`."""

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin, sampling: Sampling):
        self.model, self.processor, self.sampling = model, processor, sampling
        tokenizer = getattr(processor, "tokenizer", processor)
        self.config = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not sampling.greedy,
            temperature=None if sampling.greedy else sampling.temperature,
            top_p=None if sampling.greedy else sampling.top_p,
            top_k=None if sampling.greedy else 0,
            repetition_penalty=1.0,
            num_return_sequences=sampling.num_guesses,
            eos_token_id=model.generation_config.eos_token_id or tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(sampling.seed)

    @torch.inference_mode()
    def __call__(self, conversations: Sequence[Conversation]) -> list[list[str]]:
        inputs = self.processor.apply_chat_template(
            list(conversations),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(self.model.device)
        output = self.model.generate(**inputs, generation_config=self.config)
        texts = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        k = self.sampling.num_guesses
        return [texts[i * k:(i + 1) * k] for i in range(len(conversations))]


class VLLMGenerator:
    """vLLM's offline `LLM`: the prompt text from the processor's chat template, the images alongside."""

    def __init__(
        self,
        model_dir: str,
        processor: ProcessorMixin,
        sampling: Sampling,
        *,
        max_images: int,
        dtype: str | None,
        gpu_memory_utilization: float = 0.9,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ):
        from vllm import LLM, SamplingParams

        mm_kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        self.llm = LLM(
            model=model_dir,
            dtype=dtype or "auto",
            seed=sampling.seed,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"image": max(1, max_images)},
            mm_processor_kwargs=mm_kwargs or None,
        )
        self.params = SamplingParams(
            n=sampling.num_guesses,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=-1,
            repetition_penalty=1.0,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
        )
        self.processor = processor

    def __call__(self, conversations: Sequence[Conversation]) -> list[list[str]]:
        requests = [
            {
                "prompt": self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False),
                "multi_modal_data": {"image": conversation_images(conversation)},
            }
            for conversation in conversations
        ]
        outputs = self.llm.generate(requests, self.params, use_tqdm=False)
        return [[choice.text for choice in output.outputs] for output in outputs]


def vllm_available() -> bool:
    """vLLM is installed and a CUDA GPU is visible."""
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def pick_backend(backend: str) -> str:
    """'auto' -> 'vllm' when vLLM can run here, else 'transformers'; an explicit 'vllm' must be able to run."""
    if backend == "auto":
        chosen = "vllm" if vllm_available() else "transformers"
        logger.info("generation backend: %s", chosen)
        return chosen
    if backend == "vllm" and not vllm_available():
        raise RuntimeError("--backend vllm needs vLLM installed (bash setup.sh --gpu) and a CUDA GPU")
    if backend not in ("transformers", "vllm"):
        raise ArgumentError(f"--backend must be auto, transformers or vllm, got {backend!r}")
    return backend
