"""Resuming without DeepSpeed restores every weight of a Qwen2.5-VL checkpoint, vision tower included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from open_r1.modeling.checkpoints import restore_weights_for_resume


def test_a_checkpoint_saved_under_original_key_names_resumes_whole(tmp_path, tiny_model_dir):
    trained = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        for param in trained.parameters():
            param.add_(0.5)
    trained.save_pretrained(tmp_path / "checkpoint-7")
    saved_keys = load_file(tmp_path / "checkpoint-7" / "model.safetensors").keys()
    fresh = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    # what Trainer's plain load_state_dict would miss: the saved names are not the module's names
    assert set(saved_keys) != set(fresh.state_dict())

    assert restore_weights_for_resume(fresh, tmp_path / "checkpoint-7", SimpleNamespace(deepspeed=None))
    for (name, got), want in zip(fresh.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(got, want), name


def test_deepspeed_and_no_checkpoint_are_left_to_trainer(tmp_path, tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert not restore_weights_for_resume(model, None, SimpleNamespace(deepspeed=None))
    assert not restore_weights_for_resume(model, tmp_path, SimpleNamespace(deepspeed="zero3.json"))


def test_a_checkpoint_of_another_model_is_an_error(tmp_path, tiny_model_dir):
    from open_r1.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "narrow", hidden_size=64)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with pytest.raises((RuntimeError, ValueError)):
        restore_weights_for_resume(model, other, SimpleNamespace(deepspeed=None))
