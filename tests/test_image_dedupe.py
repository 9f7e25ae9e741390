"""Each distinct image is encoded once per forward (open_r1.modeling.image_dedupe), with the plain path's losses
and gradients: on the tiny model with rows of 1 and 4 images mixed, through the model itself, through TRL's
GRPOTrainer (generation, old-policy and reference log-probs, the loss), and under 2-process DeepSpeed ZeRO-3."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import GRPOConfig, ModelConfig

from conftest import REPO, write_jsonl
from open_r1.data import load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.modeling.image_dedupe import encode_images_once, plan_dedupe
from open_r1.modeling.loading import load_model
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.training.grpo import build_grpo_trainer

DENSE = str(REPO / "tests" / "fixtures" / "dense_reward.py")
TOL = dict(rtol=1e-5, atol=1e-5)


def demo_rows(demo_data, count=4):
    """Demo rows 0-2 have 1 image, row 3 has 4."""
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=count)
    assert [len(r.image_paths) for r in rows] == [1, 1, 1, 4]
    return rows


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    assert any(".visual." in n or n.startswith("model.visual") for n in a), "the vision tower got no gradient"
    for name in a:
        torch.testing.assert_close(a[name], b[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_plan_finds_exact_copies_only():
    torch.manual_seed(0)
    a, b = torch.randn(4, 32), torch.randn(4, 32)
    near = a.clone()
    near[0, 1] += 1e-3  # a value the fingerprint does not read (it reads 64 of 128): the full comparison sees it
    pixels = torch.cat([a, b, a, near, b])
    grid = torch.tensor([[1, 2, 2]] * 5)
    plan = plan_dedupe(pixels, grid)
    assert plan.unique == [0, 1, 3] and plan.owner == [0, 1, 0, 2, 1]
    assert plan_dedupe(torch.cat([a, b]), torch.tensor([[1, 2, 2]] * 2)) is None  # nothing repeated
    assert plan_dedupe(torch.cat([a, near]), torch.tensor([[1, 2, 2]] * 2)) is None
    # same values, another grid: not a copy
    assert plan_dedupe(torch.cat([a, a]), torch.tensor([[1, 2, 2], [1, 1, 4]])) is None


def test_model_loss_and_gradients_match_the_plain_path(tiny_model_dir, demo_data):
    """A shuffled GRPO micro-batch: 3 copies of a 1-image prompt and 3 of a 4-image prompt, interleaved."""
    rows = demo_rows(demo_data)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    one = [Image.open(p).convert("RGB") for p in rows[0].image_paths]
    four = [Image.open(p).convert("RGB") for p in rows[3].image_paths]

    def conversation(images, answer):
        content = [*({"type": "image", "image": im} for im in images), {"type": "text", "text": "Where?"}]
        return [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]

    order = [(one, "Paris"), (four, "Lisbon, PT"), (four, "Oslo"), (one, "48.85, 2.35"), (one, "x"), (four, "Rome")]
    batch = processor.apply_chat_template(
        [conversation(images, answer) for images, answer in order],
        tokenize=True, return_dict=True, return_tensors="pt", padding=True,
    )
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.train()

    def loss_and_grads():
        model.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        return loss.detach(), grads(model)

    plain_loss, plain_grads = loss_and_grads()
    (stats,) = encode_images_once(model)
    loss, deduped_grads = loss_and_grads()
    assert (stats.images_in, stats.images_encoded) == (15, 5)  # 3 x 1 + 3 x 4 images, 1 + 4 distinct
    torch.testing.assert_close(loss, plain_loss, **TOL)
    assert_same_grads(deduped_grads, plain_grads)

    encode_images_once(model, enabled=False)
    assert "forward" not in model.model.visual.__dict__
    again, _ = loss_and_grads()
    assert stats.calls == 1, "the plain forward still went through the dedupe"
    torch.testing.assert_close(again, plain_loss, **TOL)


def test_trl_generation_log_probs_and_loss_match_the_plain_path(tmp_path, tiny_model_dir, demo_data):
    """TRL's own passes with the reference model (beta > 0) and the old policy (num_iterations 2): one generation
    batch of a 1-image and a 4-image prompt, 3 completions each."""
    rows = demo_rows(demo_data)
    load_reward_module(DENSE)
    model = load_model(ModelConfig(model_name_or_path=str(tiny_model_dir)))
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=6, num_generations=3, max_completion_length=8,
        max_steps=1, beta=0.04, num_iterations=2, report_to=[], use_cpu=True, bf16=False, seed=0,
        save_strategy="no",
    )
    trainer = build_grpo_trainer(
        model,
        AutoProcessor.from_pretrained(tiny_model_dir),
        build_reward_funcs(["distinct_chars"], {}),
        args,
        train_dataset=with_images(rows_to_dataset([rows[0], rows[3]]), max_pixels=112 * 112),
        shared_prefill=False,  # generation's prefill sees every copy, so the tower's dedupe is what is counted
    )
    (policy,) = encode_images_once(trainer.model)  # installed by build_grpo_trainer: its counters
    (reference,) = encode_images_once(trainer.ref_model)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert sorted(inputs["num_images"]) == [1, 1, 1, 4, 4, 4]
    # generation (prefill) and the old-policy pass on the policy, one pass on the reference model
    assert (policy.calls, policy.images_in, policy.images_encoded) == (2, 30, 10)
    assert (reference.calls, reference.images_in, reference.images_encoded) == (1, 15, 5)

    def log_probs(model):
        prompt_completion = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(
                model, prompt_completion, attention_mask, inputs["completion_ids"].size(1),
                pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                num_images=inputs["num_images"], mm_token_type_ids=inputs.get("mm_token_type_ids"),
            )
        return logps

    def loss_and_grads():
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        return loss.detach(), grads(trainer.model)

    def greedy():
        prompt = {k: inputs[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in inputs}
        with torch.no_grad():
            return trainer.model.generate(
                input_ids=inputs["prompt_ids"], attention_mask=inputs["prompt_mask"], do_sample=False,
                max_new_tokens=6, **{k: v[:, : inputs["prompt_ids"].size(1)] if k == "mm_token_type_ids" else v
                                     for k, v in prompt.items()},
            )

    deduped_loss, deduped_grads = loss_and_grads()
    deduped_greedy = greedy()
    assert policy.images_encoded == 20 and policy.images_in == 60  # the loss pass and the prefill: 5 of 15 each
    encode_images_once(trainer.model, enabled=False)
    encode_images_once(trainer.ref_model, enabled=False)
    torch.testing.assert_close(inputs["old_per_token_logps"], log_probs(trainer.model), **TOL)
    torch.testing.assert_close(inputs["ref_per_token_logps"], log_probs(trainer.ref_model), **TOL)
    plain_loss, plain_grads = loss_and_grads()
    torch.testing.assert_close(deduped_loss, plain_loss, **TOL)
    assert_same_grads(deduped_grads, plain_grads)
    assert torch.equal(greedy(), deduped_greedy)


def launch(output_dir, data, ds_config, *flags, timeout=900) -> str:
    # GRPO from the base tiny model alone: no SFT warm start, no held-out evaluation, whatever the launcher's defaults
    env = dict(os.environ, OUTPUT_DIR=str(output_dir), REPORT_TO="none", CUDA_VISIBLE_DEVICES="",
               DATA_PATHS=str(data), IMAGE_FOLDERS=str(REPO / "data/demo/images"), DS_CONFIG=str(ds_config),
               WARM_START="none", EVAL="0")
    env.pop("MODEL", None)
    result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh", *flags], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result.stdout + result.stderr


def mixed_prompts(tmp_path, demo_data):
    """(data, ZeRO-3 config with plain SGD, launcher flags) of a one-step 2-process run in which each process
    holds one 1-image and one 4-image prompt (no shuffling), 4 completions each."""
    train, _, _ = demo_data
    lines = train.read_text().splitlines()
    ones = [line for line in lines if isinstance(json.loads(line)["image"], str)]
    fours = [line for line in lines if isinstance(json.loads(line)["image"], list)]
    data = write_jsonl(tmp_path / "mixed.jsonl", [ones[0], fours[0], ones[1], fours[1]])
    ds_config = json.loads((REPO / "local_scripts" / "zero3_cpu.json").read_text())
    ds_config["zero_allow_untested_optimizer"] = True  # plain SGD, whose step shows the gradient itself
    (tmp_path / "zero3_sgd.json").write_text(json.dumps(ds_config))
    flags = ["--max_steps", "1", "--save_steps", "1", "--shuffle_dataset", "false", "--per_device_train_batch_size",
             "8", "--num_generations", "4", "--max_completion_length", "8", "--beta", "0.04", "--num_iterations",
             "2", "--optim", "sgd", "--learning_rate", "1.0", "--lr_scheduler_type", "constant",
             "--reward_funcs", "distinct_chars", "--reward_weights", "1.0", "--reward_module", DENSE]
    return data, tmp_path / "zero3_sgd.json", flags


@pytest.mark.slow
def test_two_process_zero3_step_is_the_same_with_and_without_dedupe(tmp_path, tiny_model_dir, demo_data):
    """One GRPO step of the real launcher (2 CPU processes, ZeRO-3, reference model and old policy) with and
    without `--dedupe_images`: the same loss, and the same weights after one plain SGD step (lr 1, so the weight
    change is the clipped gradient)."""
    data, ds_config, flags = mixed_prompts(tmp_path, demo_data)
    launch(tmp_path / "deduped", data, ds_config, *flags)
    launch(tmp_path / "plain", data, ds_config, *flags, "--dedupe_images", "false")

    def loss(folder):
        state = json.loads((folder / "checkpoint-1" / "trainer_state.json").read_text())
        return [h["loss"] for h in state["log_history"] if "loss" in h]

    assert loss(tmp_path / "deduped") == pytest.approx(loss(tmp_path / "plain"), abs=1e-5)
    base = load_file(tiny_model_dir / "model.safetensors")
    deduped = load_file(tmp_path / "deduped" / "model.safetensors")
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    moved = [k for k in base if not torch.equal(base[k], plain[k])]
    assert any("visual" in k for k in moved), "the step did not train the vision tower"
    for name in base:
        torch.testing.assert_close(deduped[name] - base[name], plain[name] - base[name], **TOL,
                                   msg=lambda m, n=name: f"{n}: {m}")
