"""GRPO on the tiny Qwen2.5-VL through TRL's own GRPOTrainer: mixed image counts, LoRA, the no-signal warning,
a finished run left alone, a resume in a later epoch, a failing reward."""

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
from open_r1.modeling.checkpoints import FINISHED_MARKER
from open_r1.modeling.loading import load_model
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.rewards.registry import RewardFaultError
from open_r1.training.callbacks import PreemptionCallback
from open_r1.training.grpo import build_grpo_trainer

# Each test trains the tiny model end to end through grpo_jsonl.py: the slow tier.
pytestmark = pytest.mark.slow

DENSE = str(REPO / "tests" / "fixtures" / "dense_reward.py")
RANK_REWARDS = str(REPO / "tests" / "fixtures" / "rank_rewards.py")


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


def test_a_model_that_samples_one_completion_per_prompt_is_reported(tmp_path, tiny_model_dir, caplog):
    # near-greedy sampling: every group's completions are the same text, so their (non-zero) rewards are equal;
    # TRL's frac_reward_zero_std can miss such groups (float32 noise in the std), frac_reward_flat_groups counts them
    with caplog.at_level("WARNING"):
        out = run_main(tmp_path, tiny_model_dir, max_steps=3, temperature=1e-3)
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [log for log in logs if "reward" in log]
    assert len(steps) == 3 and all(log["reward"] > 0 for log in steps)
    assert [log["frac_reward_flat_groups"] for log in steps] == [1.0, 1.0, 1.0]
    assert "NO LEARNING SIGNAL" in caplog.text and "higher --temperature" in caplog.text


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


def steps_and_rows(log_file: Path) -> list[tuple[int, list]]:
    return [(r["step"], r["ids"]) for r in map(json.loads, log_file.read_text().splitlines())]


def test_a_finished_run_is_left_alone_and_a_resume_in_a_later_epoch_draws_the_same_rows(tmp_path, tiny_model_dir,
                                                                                        monkeypatch):
    """8 rows, 2 a step: 4 steps an epoch. The run ends at step 6 (checkpoints 5 and 6); run again, it does
    nothing. Cut back to checkpoint-5 (as if killed after that save), it resumes in epoch 2 and trains step 6 on
    the rows the uninterrupted run trained it on."""
    monkeypatch.setenv("GEO_R_ROW_LOG", str(tmp_path))
    rows = tmp_path / "rank0.jsonl"
    script = {"reward_funcs": ["logged_rows"], "reward_module": RANK_REWARDS}
    out = run_main(tmp_path, tiny_model_dir, script=script, max_steps=6, save_strategy="steps", save_steps=5)
    first = steps_and_rows(rows)
    assert [step for step, _ in first] == [0, 1, 2, 3, 4, 5]
    assert json.loads((out / FINISHED_MARKER).read_text()) == {"global_step": 6, "max_steps": 6}
    saved = (out / "model.safetensors").stat().st_mtime_ns

    run_main(tmp_path, tiny_model_dir, script=script, max_steps=6, save_strategy="steps", save_steps=5)
    assert steps_and_rows(rows) == first, "a finished run was trained again"
    assert (out / "model.safetensors").stat().st_mtime_ns == saved and not (out / "checkpoint-7").exists()

    import shutil

    shutil.rmtree(out / "checkpoint-6")
    (out / FINISHED_MARKER).unlink()
    run_main(tmp_path, tiny_model_dir, script=script, max_steps=6, save_strategy="steps", save_steps=5)
    assert steps_and_rows(rows)[len(first):] == [first[5]], "the resumed step trained on other rows"
    assert json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6


def test_a_failing_reward_gives_no_value_is_logged_and_stops_the_run_after_n_failing_steps(tmp_path, tiny_model_dir,
                                                                                         monkeypatch, caplog):
    built = []

    def keep_trainer(*args, **kwargs):
        built.append(build_grpo_trainer(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(grpo_jsonl, "build_grpo_trainer", keep_trainer)
    monkeypatch.setenv("GEO_R_FAIL_RANK", "0")
    script = {"reward_funcs": ["logged_rows", "fails_on_one_rank"], "reward_module": RANK_REWARDS,
              "reward_max_failing_steps": 3}
    try:
        with caplog.at_level("ERROR"), pytest.raises(RewardFaultError) as err:
            run_main(tmp_path, tiny_model_dir, script=script, max_steps=6)
    finally:  # training raised: put back the signal handlers the run installed (a process that ends need not)
        for callback in built[0].callback_handler.callbacks if built else []:
            if isinstance(callback, PreemptionCallback):
                callback.restore()
    assert "reward 'fails_on_one_rank' failed on 3 consecutive steps" in str(err.value)
    assert "ZeroDivisionError" in str(err.value) and "Traceback" in str(err.value)
    assert caplog.text.count("ZeroDivisionError: division by zero") == 1, "the first traceback, printed once"
    (trainer,) = built
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2, "the run went on with the other reward until the third failing step"
    assert all(h["rewards/fails_on_one_rank/errors"] == 4.0 and h["rewards/logged_rows/errors"] == 0.0 for h in logs)
    assert all(h["rewards/fails_on_one_rank/mean"] is None and h["reward"] is not None for h in logs)
