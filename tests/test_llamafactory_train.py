"""The LLaMA-Factory hand-off for real: export the demo set, `llamafactory-cli train` the tiny model on the CPU
from .venv-sft (through run_scripts/run_sft_llamafactory.sh), then GRPO one step from the checkpoint it wrote.

Needs LLaMA-Factory's own environment: `bash setup.sh --sft` (or `bash run_scripts/setup_sft_env.sh`).
Deselect with `-m "not llamafactory"` on a machine without it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from open_r1.data import load_rows
from open_r1.data.dataset import prompt_messages
from open_r1.data.images import load_image
from open_r1.data.sft_targets import chain_of_region_target
from open_r1.modeling.loading import load_processor

pytestmark = [pytest.mark.llamafactory, pytest.mark.slow]

SFT_VENV = REPO / ".venv-sft"
STEPS = 6


@pytest.fixture(scope="module")
def llamafactory_cli():
    cli = SFT_VENV / "bin" / "llamafactory-cli"
    if not cli.is_file():
        pytest.fail(
            f"{cli} is missing: these tests run LLaMA-Factory from its own environment. Install it with "
            "`bash setup.sh --sft` (about 3 minutes), or deselect them with -m 'not llamafactory'.",
            pytrace=False,
        )
    return cli


def launch(env_overrides: dict, *overrides: str, timeout: int = 1200) -> str:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", **env_overrides)
    env.pop("MODEL", None)
    result = subprocess.run(["bash", "run_scripts/run_sft_llamafactory.sh", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    return log


@pytest.fixture(scope="module")
def full_run(llamafactory_cli, tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("llamafactory") / "full"
    log = launch({"OUTPUT_DIR": str(out)}, f"max_steps={STEPS}", f"save_steps={STEPS // 2}")
    return out, log


def test_llamafactory_trains_the_tiny_model_on_the_exported_demo_set(full_run, tiny_model_dir):
    out, log = full_run
    assert "embedded default" in log
    loaded_whole = not re.search(r"newly initiali[sz]ed|were not used when initializing", log)
    assert loaded_whole, "LLaMA-Factory's transformers did not load every weight of the 5.17 checkpoint"
    losses = [r["loss"] for r in map(json.loads, (out / "trainer_log.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == STEPS and losses[-1] < losses[0], losses
    base, trained = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(base) == set(trained)  # transformers 5.6 wrote the keys .venv's 5.17 reads
    vision = [k for k in base if k.startswith(("visual.", "model.visual."))]
    text = [k for k in base if ".layers.0.self_attn.q_proj.weight" in k]
    assert vision and all(torch.equal(base[k], trained[k]) for k in vision), "freeze_vision_tower was ignored"
    assert text and not torch.equal(base[text[0]], trained[text[0]]), "the language model did not train"


def test_llamafactory_trains_on_the_prompts_grpo_uses(full_run, tiny_model_dir, demo_data):
    out, log = full_run
    from trl.data_utils import prepare_multimodal_messages

    train, _, images = demo_data
    row = load_rows(str(train), str(images), max_rows=1)[0]
    processor = load_processor(str(tiny_model_dir), max_pixels=12544)
    messages = prompt_messages(row) + [{"role": "assistant", "content": chain_of_region_target(row)}]
    pictures = [load_image(p, 12544) for p in row.image_paths]
    text = processor.apply_chat_template(prepare_multimodal_messages(messages, pictures), tokenize=False)
    expanded = processor(text=[text], images=[pictures], return_tensors="pt")["input_ids"][0]
    expected = processor.tokenizer.decode(expanded)
    shown = re.search(r"^inputs:\n(.*?)\n(?:label_ids|labels):", log, re.DOTALL | re.MULTILINE)
    assert shown, "LLaMA-Factory printed no example"
    assert shown.group(1).rstrip("\n") == expected.rstrip("\n")  # the very same tokens, newlines included
    assert prompt_messages(row)[0]["content"] in shown.group(1)


def test_grpo_starts_from_the_checkpoint_llamafactory_wrote(full_run, tmp_path):
    out, _ = full_run
    checkpoints = sorted(p for p in out.glob("checkpoint-*") if (p / "config.json").is_file())
    assert checkpoints, list(out.iterdir())
    checkpoint = checkpoints[-1]  # an intermediate folder, with the processor LLaMA-Factory saves beside it
    grpo = tmp_path / "grpo"
    result = subprocess.run(
        [sys.executable, "-m", "open_r1.grpo_jsonl", "--config", "data_config/demo.yaml",
         "--model_name_or_path", str(checkpoint), "--output_dir", str(grpo), "--report_to", "none",
         # one step on a smaller batch than the recipe's 8 photos x 8 completions: loading is what is checked here
         "--max_steps", "1", "--per_device_train_batch_size", "8", "--num_generations", "4",
         "--max_completion_length", "32"],
        cwd=REPO, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert "[geo-r] step 1/1  reward " in log, log[-3000:]  # one GRPO step was logged
    logged = [json.loads(line) for line in (grpo / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/format/mean" in record for record in logged)
    assert (grpo / "model.safetensors").is_file() and (grpo / "processor_config.json").is_file()


def test_lora_run_is_merged_into_a_checkpoint_grpo_can_load(llamafactory_cli, tmp_path, tiny_model_dir):
    out = tmp_path / "lora"
    log = launch({"OUTPUT_DIR": str(out), "FINETUNING": "lora"}, "max_steps=2", "save_steps=2", "learning_rate=1e-2")
    assert "merging it into" in log and (out / "adapter_config.json").is_file()
    merged = out / "merged"
    base, weights = load_file(tiny_model_dir / "model.safetensors"), load_file(merged / "model.safetensors")
    assert set(base) == set(weights)
    assert any(not torch.equal(base[k], weights[k]) for k in base), "the merged model equals the base"
    from trl import ModelConfig

    from open_r1.modeling.loading import load_model

    assert type(load_model(ModelConfig(model_name_or_path=str(merged)))).__name__.startswith("Qwen2_5_VL")
    assert load_processor(str(merged)).tokenizer.padding_side == "left"
