"""The GPU recipe at the real Qwen2.5-VL-3B widths, shallow: the model builder's shapes, vocabulary and template, and
(slow) GRPO with data_config/geo_r_3b.yaml through the launcher on 2 processes under ZeRO-3: save, resume with
more steps, reload and evaluate. bench/rehearse.py runs every recipe this way, at full photo sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

REAL_3B = REPO / ".cache" / "qwen2.5-vl-3b-2l2v"


@pytest.fixture(scope="module")
def real_3b():
    from open_r1.modeling.real_width import build_real_width_model

    return build_real_width_model(REAL_3B, shapes="3b", num_layers=2, vision_depth=2)


def test_shallow_config_keeps_every_width_and_both_vision_attentions():
    from open_r1.modeling.real_width import released_config, shallow_config

    for shapes in ("3b", "7b"):
        released, config = released_config(shapes), shallow_config(shapes, 3, 4)
        for key, value in released["text_config"].items():
            if key not in ("num_hidden_layers", "rope_parameters"):
                assert getattr(config.text_config, key) == value, key
        assert config.text_config.num_hidden_layers == 3
        assert config.vision_config.depth == 4
        assert config.vision_config.fullatt_block_indexes == [3]  # blocks 0-2 windowed, 3 full
        assert config.vision_config.hidden_size == released["vision_config"]["hidden_size"]
        assert config.tie_word_embeddings == released["tie_word_embeddings"]
    with pytest.raises(ValueError, match="vision_depth"):
        shallow_config("3b", 2, 1)
    with pytest.raises(ValueError, match="shapes"):
        shallow_config("14b", 2, 2)


def test_real_width_model_has_the_released_vocabulary_template_and_processor(real_3b):
    from transformers import AutoConfig, AutoProcessor

    from open_r1.modeling.chat_template import QWEN2_5_VL_CHAT_TEMPLATE

    config = AutoConfig.from_pretrained(real_3b)
    assert (config.text_config.vocab_size, config.text_config.hidden_size) == (151936, 2048)
    assert str(config.text_config.dtype).endswith("bfloat16")
    processor = AutoProcessor.from_pretrained(real_3b)
    assert processor.chat_template == QWEN2_5_VL_CHAT_TEMPLATE
    assert processor.image_processor.size["longest_edge"] == 12845056  # the released preprocessor's max_pixels
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 151665
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == config.image_token_id == 151655
    # the real Qwen2 merges: a plain English word is one token, digits one each
    assert len(tokenizer("Where was this photo taken?")["input_ids"]) == 6
    assert len(tokenizer("48.8566")["input_ids"]) == 7
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where?"}]}], add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert text.endswith("<|vision_start|><|image_pad|><|vision_end|>Where?<|im_end|>\n<|im_start|>assistant\n")


def test_a_1024x768_photo_is_494_image_tokens_at_the_recipes_max_pixels(real_3b, tmp_path):
    """The token count every GPU memory figure of the 3B recipe starts from."""
    import yaml
    from PIL import Image

    from open_r1.modeling.loading import load_processor

    recipe = yaml.safe_load((REPO / "data_config" / "geo_r_3b.yaml").read_text())
    processor = load_processor(str(real_3b), min_pixels=recipe["min_pixels"], max_pixels=recipe["max_pixels"])
    out = processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[Image.new("RGB", (1024, 768))],
                    return_tensors="pt")
    assert int((out["input_ids"] == 151655).sum()) == 494


@pytest.mark.slow
def test_3b_recipe_trains_saves_resumes_and_evaluates_at_real_widths(real_3b, tmp_path):
    from open_r1.data.rehearsal import write_rehearsal_set

    demo = REPO / "data" / "demo"
    # photos smaller than a camera's keep the step short; bench/rehearse.py runs 1024x768 and 4-view rows
    train, images = write_rehearsal_set(tmp_path / "data", demo / "train.jsonl", demo / "images", single=2, views=0,
                                        size=(448, 336))
    held_out, _ = write_rehearsal_set(tmp_path / "data", demo / "test.jsonl", demo / "images", single=2, views=0,
                                      size=(448, 336), name="eval")
    out = tmp_path / "grpo"
    env = dict(os.environ, MODEL=str(real_3b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out),
               DATA_PATHS=str(train), IMAGE_FOLDERS=str(images), NPROC_PER_NODE="2", REPORT_TO="none",
               CUDA_VISIBLE_DEVICES="", DS_CONFIG=str(REPO / "local_scripts" / "zero3_cpu.json"),
               MALLOC_MMAP_THRESHOLD_="131072")  # large frees back to the kernel: 2 ranks of 11 GB peaks in 24 GB
    short = ["--use_vllm", "false", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
             "--num_generations", "2", "--max_completion_length", "8", "--save_steps", "1"]

    def launch(steps: int) -> str:
        result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh", *short, "--max_steps", str(steps)], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=600)
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-6000:]
        return log

    first = launch(1)
    assert "--max_completion_length overrides max_completion_length: 512 -> 8" in first
    assert (out / "checkpoint-1" / "trainer_state.json").is_file()
    second = launch(2)
    assert f"resuming from {out / 'checkpoint-1'}" in second
    assert json.loads((out / "run_finished.json").read_text())["global_step"] == 2
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged if "num_tokens" in entry] == [1, 2]  # step 1 kept across the resume

    eval_dir = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "open_r1.eval_geo",
         "--model_name_or_path", str(out), "--data_file_paths", str(held_out), "--image_folders", str(images),
         "--output_dir", str(eval_dir), "--no_plots", "--max_new_tokens", "8", "--batch_size", "2"],
        cwd=REPO, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 2
