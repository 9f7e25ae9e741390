"""Native SFT warm start with TRL's SFTTrainer on the tiny Qwen2.5-VL: it supervises only the target, it
teaches the format the rewards parse, and its checkpoint (full or LoRA-merged) is what GRPO starts from.
bench/sft_learning.py follows the same run step by step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trl import ModelConfig, SFTConfig

from conftest import REPO
from open_r1.answer import parse_answer
from open_r1.data import load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.data.sft_targets import chain_of_region_target
from open_r1.modeling.loading import load_model, load_processor
from open_r1.rewards.format import format_score
from open_r1.training.sft import build_sft_trainer, greedy_completions, save_for_grpo, sft_dataset

MAX_PIXELS = 112 * 112
LEARN_STEPS = 120  # about two minutes on 2 CPU cores
LEARN_BATCH = 16
LEARN_LR = 5e-3  # the demo recipe's; at 1e-2 the 128-wide tiny model wrote parseable but garbled tags
PROBE_ROWS = 24  # every second held-out row: a parse rate in steps of 1/24 (8 rows gave steps of 1/8)
# Measured after the run below (seed 0, torch 2.14 / transformers 5.17 / trl 1.16, the 128-wide tiny model, 2 CPU
# cores): 23 of the 24 probe rows parse (0.96; format score 0.87; before training 0 and 0). Threshold 16 of 24
# (0.67): a margin of 7 rows below the measured figure, still far above the untrained model's 0.
MIN_PARSE_RATE = 16 / PROBE_ROWS


def sft_args(output_dir: Path, **overrides) -> SFTConfig:
    settings = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=LEARN_BATCH,
        per_device_eval_batch_size=PROBE_ROWS,
        learning_rate=LEARN_LR,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=5,
        max_steps=LEARN_STEPS,
        max_length=None,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=0,
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def run(cmd: list[str], timeout: int = 900) -> str:
    """Run a command from the repository root on the CPU; fail with the end of its log."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    return log


# One GRPO step of the demo recipe on a smaller batch (2 photos x 4 completions, not 8 x 8 of 128 tokens): whether
# GRPO loads the checkpoint and trains a step from it does not depend on the batch.
SMALL_GRPO_STEP = ["--max_steps", "1", "--per_device_train_batch_size", "8", "--num_generations", "4",
                   "--max_completion_length", "32"]


def grpo_one_step(checkpoint: Path, output_dir: Path) -> str:
    """The GRPO entry, as a user runs it, for one step from `checkpoint`; returns its log."""
    return run([sys.executable, "-m", "open_r1.grpo_jsonl", "--config", "data_config/demo.yaml",
                "--model_name_or_path", str(checkpoint), "--output_dir", str(output_dir), *SMALL_GRPO_STEP,
                "--report_to", "none"])


@pytest.fixture(scope="module")
def learned(tmp_path_factory, tiny_model_dir, demo_data):
    """One short SFT run on the demo train split, measured on held-out rows before and after, then saved."""
    train, test, images = demo_data
    train_rows = load_rows(str(train), str(images))
    test_rows = load_rows(str(test), str(images))
    probe = test_rows[:: len(test_rows) // PROBE_ROWS][:PROBE_ROWS]
    out = tmp_path_factory.mktemp("sft") / "out"
    model_args = ModelConfig(model_name_or_path=str(tiny_model_dir))
    processor = load_processor(str(tiny_model_dir), max_pixels=MAX_PIXELS)
    model = load_model(model_args)
    args = sft_args(out)
    trainer = build_sft_trainer(
        model,
        processor,
        args,
        train_dataset=with_images(sft_dataset(train_rows), MAX_PIXELS),
        eval_dataset=with_images(sft_dataset(probe), MAX_PIXELS),
    )
    base = {n: p.detach().clone() for n, p in model.named_parameters()}

    def measure() -> dict:
        completions = greedy_completions(trainer.model, processor, probe, max_new_tokens=128, max_pixels=MAX_PIXELS)
        return {
            "loss": trainer.evaluate()["eval_loss"],
            "parse_rate": sum(parse_answer(c) is not None for c in completions) / len(completions),
            "format_score": sum(map(format_score, completions)) / len(completions),
            "completions": completions,
        }

    before = measure()
    trainer.train()
    after = measure()
    save_for_grpo(trainer, processor, model_args, args)
    print(
        f"\nSFT {LEARN_STEPS} steps x {LEARN_BATCH} rows, {len(probe)} held-out rows: "
        f"loss {before['loss']:.3f} -> {after['loss']:.3f}, parse rate {before['parse_rate']:.2f} -> "
        f"{after['parse_rate']:.2f}, format score {before['format_score']:.2f} -> {after['format_score']:.2f}\n"
        f"e.g. {after['completions'][0]!r}"
    )
    return {"before": before, "after": after, "base": base, "trainer": trainer, "processor": processor,
            "out": out, "probe": probe}


def test_prompts_are_grpos_and_targets_are_chain_of_region(demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=6)
    sft, grpo = sft_dataset(rows), rows_to_dataset(rows)
    assert sft["prompt"] == grpo["prompt"]
    assert [c[0]["content"] for c in sft["completion"]] == [chain_of_region_target(r) for r in rows]
    assert [c[0]["content"] for c in sft_dataset(rows, "answer")["completion"]] == [r.solution for r in rows]


@pytest.mark.slow
def test_only_the_completion_is_supervised(tmp_path, tiny_model_dir, demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=4)  # rows with 1 and 4 images in one batch
    processor = load_processor(str(tiny_model_dir), max_pixels=MAX_PIXELS)
    trainer = build_sft_trainer(
        load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))),
        processor,
        sft_args(tmp_path, remove_unused_columns=True),
        train_dataset=with_images(sft_dataset(rows), MAX_PIXELS),
    )
    assert trainer.args.remove_unused_columns is False  # the image decoder needs `image_paths`
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    assert batch["pixel_values"].shape[0] > 0
    for row, input_ids, labels in zip(rows, batch["input_ids"], batch["labels"]):
        supervised = processor.tokenizer.decode(input_ids[labels != -100])
        # the target and the end of turn (the newline after it depends on the chat template)
        assert supervised.rstrip("\n") == chain_of_region_target(row) + "<|im_end|>", supervised
        assert processor.tokenizer.decode(input_ids).count("<|image_pad|>") > 0


@pytest.mark.slow
def test_sft_changes_the_weights_and_lowers_the_held_out_loss(learned):
    before, after = learned["before"]["loss"], learned["after"]["loss"]
    assert after < before / 2, (before, after)
    trained = dict(learned["trainer"].model.named_parameters())
    changed = [n for n, p in learned["base"].items() if not torch.equal(p, trained[n].detach())]
    assert any("layers.0.self_attn.q_proj" in n for n in changed), changed[:5]


@pytest.mark.slow
def test_sft_teaches_the_format_the_rewards_parse(learned):
    before, after = learned["before"], learned["after"]
    assert before["parse_rate"] < 0.5, before["completions"]  # a random model writes no answer
    assert after["parse_rate"] >= MIN_PARSE_RATE, (after["parse_rate"], after["completions"])
    assert after["format_score"] > before["format_score"] + 0.4, (before["format_score"], after["format_score"])


@pytest.mark.slow
def test_greedy_completions_do_not_depend_on_batching(learned, demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=8)
    probe = [next(r for r in rows if len(r.image_paths) == 4), next(r for r in rows if len(r.image_paths) == 1)]
    model, processor = learned["trainer"].model, learned["processor"]
    together = greedy_completions(model, processor, probe, max_new_tokens=8, batch_size=2, max_pixels=MAX_PIXELS)
    alone = [greedy_completions(model, processor, [r], max_new_tokens=8, max_pixels=MAX_PIXELS)[0] for r in probe]
    assert together == alone  # left padding: a padded row decodes as it would on its own
    assert all(c and "<|im_start|>" not in c and "Where was this photo" not in c for c in together), together


@pytest.mark.slow
def test_the_sft_checkpoint_is_where_grpo_starts(learned, tmp_path):
    out = learned["out"]
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    log = grpo_one_step(out, tmp_path / "grpo")
    assert "[geo-r] step 1/1  reward " in log, log[-3000:]  # one GRPO step was logged
    logged = [json.loads(line) for line in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/format/mean" in record for record in logged)
    assert (tmp_path / "grpo" / "model.safetensors").is_file()
    # the run's folder records the prompt it trained on (the demo recipe's bare question), for evaluation to reuse
    assert json.loads((tmp_path / "grpo" / "geo_r_prompt.json").read_text()) == {"question_template": "{question}"}


@pytest.mark.slow
def test_launcher_lora_under_zero3_saves_a_merged_checkpoint(tmp_path, tiny_model_dir):
    """run_scripts/run_sft.sh's embedded default under ZeRO-3 in 2 CPU processes (NPROC_PER_NODE), with LoRA: the
    merge gathers the partitions."""
    out = tmp_path / "lora"
    env = dict(os.environ, OUTPUT_DIR=str(out), REPORT_TO="none", CUDA_VISIBLE_DEVICES="", NPROC_PER_NODE="2")
    env.pop("MODEL", None)
    result = subprocess.run(
        ["bash", "run_scripts/run_sft.sh", "--max_steps", "2", "--max_rows", "8", "--per_device_train_batch_size", "2",
         "--learning_rate", "1e-2", "--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
         "--lora_target_modules", "q_proj", "v_proj"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "embedded default" in log and "merged model" in log
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter_config.json").exists()  # else transformers would load the adapter, not the merge
    base, merged = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(base) == set(merged), set(base) ^ set(merged)  # whole weights, not ZeRO-3 partitions
    assert all(base[k].shape == merged[k].shape for k in base)
    moved = [k for k in base if not torch.equal(base[k], merged[k])]
    assert moved and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in moved), moved
    model = load_model(ModelConfig(model_name_or_path=str(out)))
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert load_processor(str(out)).tokenizer.padding_side == "left"
