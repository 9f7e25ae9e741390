"""The training layer's decisions, each checked without a training run."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from transformers import AutoProcessor
from trl import GRPOConfig, ModelConfig

from open_r1.modeling.checkpoints import CheckpointError, find_resume_checkpoint
from open_r1.modeling.loading import ensure_left_padding, load_model, load_processor
from open_r1.training.grpo import resolve_generation_backend
from open_r1.training.run import resolve_reporting


def make_checkpoint(folder, step, *, state=True, weights=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if weights:
        (path / "model.safetensors").write_bytes(b"x")
    return path


def test_resume_picks_the_newest_complete_checkpoint_and_names_broken_ones(tmp_path, caplog):
    make_checkpoint(tmp_path, 5)
    make_checkpoint(tmp_path, 10)
    broken = make_checkpoint(tmp_path, 15, state=False)
    with caplog.at_level("WARNING"):
        assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert str(broken) in caplog.text and "trainer_state.json is missing" in caplog.text
    assert broken.exists(), "a broken checkpoint must be left in place"


def test_resume_refuses_when_every_checkpoint_is_broken(tmp_path):
    make_checkpoint(tmp_path, 3, weights=False)
    bad = make_checkpoint(tmp_path, 6)
    (bad / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint-6: trainer_state.json is corrupt.*checkpoint-3: no model weights"):
        find_resume_checkpoint(tmp_path)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert find_resume_checkpoint(tmp_path) is None
    assert find_resume_checkpoint(tmp_path / "absent") is None


def test_processor_always_pads_left_and_applies_pixel_bounds(tiny_model_dir):
    right = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="right")
    assert ensure_left_padding(right).tokenizer.padding_side == "left"
    small = load_processor(str(tiny_model_dir), min_pixels=28 * 28, max_pixels=56 * 56)
    large = load_processor(str(tiny_model_dir), min_pixels=28 * 28, max_pixels=112 * 112)
    image = Image.new("RGB", (224, 224))
    grid = lambda p: p.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod().item()  # noqa: E731
    assert grid(small) < grid(large)
    assert small.tokenizer.padding_side == "left"


def test_model_loads_whatever_its_folder_is_called(tmp_path, tiny_model_dir):
    renamed = tmp_path / "sft-run3-final"
    shutil.copytree(tiny_model_dir, renamed)
    model = load_model(ModelConfig(model_name_or_path=str(renamed)))
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"


def test_missing_vllm_falls_back_with_a_notice(caplog, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else object())
    args = GRPOConfig("out", use_vllm=True, use_cpu=True, bf16=False)
    with caplog.at_level("WARNING"):
        assert resolve_generation_backend(args).use_vllm is False
    assert "vLLM is not installed" in caplog.text


def test_wandb_logs_offline_without_a_login(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    resolve_reporting(GRPOConfig("out", report_to=["wandb"], use_cpu=True, bf16=False))
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "k")
    resolve_reporting(GRPOConfig("out", report_to=["wandb"], use_cpu=True, bf16=False))
    assert "WANDB_MODE" not in os.environ
