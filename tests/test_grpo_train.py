"""GRPO on the tiny Qwen2.5-VL through TRL's own GRPOTrainer: mixed image counts, LoRA, the no-signal warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor
from trl import GRPOConfig, ModelConfig

from conftest import REPO
from open_r1 import grpo_jsonl
from open_r1.configs import GRPOScriptArguments
from open_r1.data import load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.modeling.loading import load_model
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.training.grpo import build_grpo_trainer

DENSE = str(REPO / "tests" / "fixtures" / "dense_reward.py")


def tiny_args(output_dir: Path, **overrides) -> GRPOConfig:
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def changed(before: dict, model) -> list[str]:
    after = dict(model.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, after[n].detach())]


def test_batches_mixing_one_and_four_images_train_even_with_a_right_padded_processor(tmp_path, tiny_model_dir, demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=8)  # rows 0-2 have 1 image, row 3 has 4: every batch mixes
    assert sorted({len(r.image_paths) for r in rows}) == [1, 4]
    processor = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="right")
    load_reward_module(DENSE)
    model = load_model(ModelConfig(model_name_or_path=str(tiny_model_dir)))
    before = snapshot(model)
    trainer = build_grpo_trainer(
        model,
        processor,
        build_reward_funcs(["distinct_chars"], {}),
        tiny_args(tmp_path),
        train_dataset=with_images(rows_to_dataset(rows), max_pixels=112 * 112),
    )
    assert trainer.processing_class.tokenizer.padding_side == "left"
    trainer.train()
    assert trainer.state.global_step == 2
    assert changed(before, trainer.model), "GRPO did not change any weight"
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    assert len(rewards) == 2


def run_main(tmp_path, tiny_model_dir, *, script=None, model=None, **training):
    settings = dict(
        data_file_paths=str(REPO / "data/demo/train.jsonl"),
        image_folders=str(REPO / "data/demo/images"),
        max_pixels=112 * 112,
        max_rows=8,
        reward_funcs=["distinct_chars"],
        reward_module=DENSE,
    )
    script_args = GRPOScriptArguments(**{**settings, **(script or {})})
    model_args = ModelConfig(model_name_or_path=str(tiny_model_dir), **(model or {}))
    grpo_jsonl.main(script_args, tiny_args(tmp_path / "out", **training), model_args)
    return tmp_path / "out"


def test_lora_run_saves_an_adapter_and_freezes_the_base(tmp_path, tiny_model_dir, monkeypatch):
    built = []  # the trainer grpo_jsonl.main builds, kept to look at the model it trained

    def keep_trainer(*args, **kwargs):
        built.append(build_grpo_trainer(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(grpo_jsonl, "build_grpo_trainer", keep_trainer)
    out = run_main(tmp_path, tiny_model_dir, model={"use_peft": True, "lora_r": 4, "lora_alpha": 8, "lora_target_modules": ["q_proj", "v_proj"]})
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists()
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    (trainer,) = built
    assert trainer.state.global_step == 2
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable), [n for n in trainable if "lora_" not in n][:5]
    # The base weights after training, with the LoRA layers taken out (not merged), equal the checkpoint's.
    base = dict(AutoModelForImageTextToText.from_pretrained(tiny_model_dir).named_parameters())
    trained_base = dict(trainer.model.unload().named_parameters())
    assert set(trained_base) == set(base), set(trained_base) ^ set(base)
    moved = [n for n in base if not torch.equal(base[n], trained_base[n].detach())]
    assert not moved, f"LoRA training changed base weights: {moved[:5]}"

    adapted = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_model_dir), out)
    lora_b = [p for n, p in adapted.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "LoRA B matrices are still zero: nothing trained"


def test_freeze_vision_modules_keeps_the_vision_tower(tmp_path, tiny_model_dir):
    out = run_main(tmp_path, tiny_model_dir, script={"freeze_vision_modules": True}, save_strategy="no")
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    trained = AutoModelForImageTextToText.from_pretrained(out)
    base_p, trained_p = dict(base.named_parameters()), dict(trained.named_parameters())
    vision = [n for n in base_p if ".visual." in f".{n}"]
    text = [n for n in base_p if "language_model" in n and "layers.0.self_attn.q_proj.weight" in n]
    assert vision and all(torch.equal(base_p[n], trained_p[n]) for n in vision)
    assert text and not all(torch.equal(base_p[n], trained_p[n]) for n in text)


def test_no_learning_signal_is_reported_loudly(tmp_path, tiny_model_dir, caplog):
    # the haversine reward is 0 for every completion of a random model: the run must say so
    with caplog.at_level("WARNING"):
        run_main(
            tmp_path,
            tiny_model_dir,
            script={"reward_funcs": ["haversine"], "reward_module": None},
            max_steps=3,
        )
    assert "NO LEARNING SIGNAL" in caplog.text


def test_streaming_run_trains_from_a_lazy_stream(tmp_path, tiny_model_dir):
    out = run_main(
        tmp_path, tiny_model_dir, script={"streaming": True, "max_rows": None}, max_steps=2,
        save_strategy="steps", save_steps=2,
    )
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [h["reward"] for h in state["log_history"] if "reward" in h], "no reward logged"


def test_streaming_refuses_a_run_without_max_steps(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="--streaming .* set --max_steps"):
        run_main(tmp_path, tiny_model_dir, script={"streaming": True}, max_steps=-1, num_train_epochs=1)
