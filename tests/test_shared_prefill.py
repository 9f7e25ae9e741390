"""Each distinct prompt of a generation batch is prefilled once (open_r1.modeling.shared_prefill), with the plain
`generate`'s tokens and scores: on the tiny model with 1- and 4-image prompts mixed and left-padded, G = 4 copies
each in shuffled order, greedy and sampled, and through TRL's GRPOTrainer generation."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import GRPOConfig, ModelConfig

from conftest import REPO
from open_r1.data import load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.modeling.loading import ensure_left_padding, load_model
from open_r1.modeling.shared_prefill import plan_prompts, share_prefill
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.training.grpo import build_grpo_trainer

DENSE = str(REPO / "tests" / "fixtures" / "dense_reward.py")
TOL = dict(rtol=1e-5, atol=1e-5)
# 3 distinct prompts (demo rows 0 and 1: 1 image each, row 3: 4 images), 4 copies each, shuffled
ORDER = [0, 3, 0, 3, 1, 0, 3, 1, 1, 0, 3, 1]
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, demo_data):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=4)
    assert [len(r.image_paths) for r in rows] == [1, 1, 1, 4]
    processor = ensure_left_padding(AutoProcessor.from_pretrained(tiny_model_dir))

    def conversation(row):
        pictures = [Image.open(p).convert("RGB") for p in row.image_paths]
        content = [*({"type": "image", "image": im} for im in pictures), {"type": "text", "text": "Where?"}]
        return [{"role": "user", "content": content}]

    def batch_of(order):
        return dict(processor.apply_chat_template([conversation(rows[i]) for i in order], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True, return_tensors="pt", padding=True))

    batch = batch_of(ORDER)
    assert not batch["attention_mask"].all(), "the batch should be left-padded"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    yield model, batch, batch_of
    share_prefill(model, enabled=False)


@pytest.fixture(scope="module")
def qwen2_vl(tiny):
    """A Qwen2-VL (random weights) with the tiny Qwen2.5-VL's language model shape and token ids, reading the same
    processor's batches."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    base = tiny[0].config
    text = {k: v for k, v in base.text_config.to_dict().items() if k not in ("model_type", "layer_types")}
    vision = base.vision_config
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": text["hidden_size"], "num_heads": 2,
                       "mlp_ratio": 2, "patch_size": vision.patch_size, "in_channels": vision.in_channels,
                       "spatial_merge_size": vision.spatial_merge_size,
                       "temporal_patch_size": vision.temporal_patch_size},
        **{k: getattr(base, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                         "vision_end_token_id")},
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = tiny[0].generation_config
    yield model
    share_prefill(model, enabled=False)


class Rows:
    """Rows and tokens the language model and the vision tower see, call by call."""

    def __init__(self, model):
        self.lm: list[tuple[int, int]] = []  # (rows, new tokens) per language-model call
        self.images: list[int] = []  # images per vision-tower call
        self.handles = [
            model.model.language_model.register_forward_pre_hook(self.record_lm, with_kwargs=True),
            model.model.visual.register_forward_pre_hook(self.record_vision, with_kwargs=True),
        ]

    def record_lm(self, module, args, kwargs):
        self.lm.append(tuple(kwargs["inputs_embeds"].shape[:2]))

    def record_vision(self, module, args, kwargs):
        self.images.append(kwargs["grid_thw"].shape[0])

    def close(self):
        for handle in self.handles:
            handle.remove()


def generate(model, batch, **settings):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                              return_dict_in_generate=True, output_scores=True, output_logits=True, **settings)


def both_ways(model, batch, **settings):
    """(plain, shared) outputs and the rows each path's language model and vision tower saw."""
    share_prefill(model, enabled=False)
    seen_plain = Rows(model)
    plain = generate(model, batch, **settings)
    seen_plain.close()
    (stats,) = share_prefill(model)
    seen_shared = Rows(model)
    shared = generate(model, batch, **settings)
    seen_shared.close()
    return plain, shared, seen_plain, seen_shared, stats


def assert_same_steps(plain, shared):
    assert torch.equal(plain.sequences, shared.sequences)
    assert len(plain.scores) == len(shared.scores) == NEW_TOKENS
    for a, b in zip(plain.logits, shared.logits, strict=True):
        torch.testing.assert_close(b, a, **TOL)
    for a, b in zip(plain.scores, shared.scores, strict=True):  # after the warpers: -inf where top-k cut
        torch.testing.assert_close(b, a, **TOL)


def test_plan_groups_exact_copies(tiny):
    model, batch, _ = tiny
    plan = plan_prompts(model, batch)
    assert plan.unique == [0, 1, 4]
    assert plan.owner == [0, 1, 0, 1, 2, 0, 1, 2, 2, 0, 1, 2]
    # the same tokens with one pixel value changed in one copy's second image: a prompt of its own
    changed = dict(batch, pixel_values=batch["pixel_values"].clone())
    grid = batch["image_grid_thw"]
    first_image_of_row_3 = 2  # rows 0 and 1 hold images 0 and 1-4
    start = int(grid[: first_image_of_row_3 + 1].prod(dim=1).sum())  # its second image's first pixel row
    changed["pixel_values"][start + 5, 7] += 1e-3
    assert plan_prompts(model, changed).unique == [0, 1, 3, 4]
    # the same tokens and images under another attention mask: not a copy
    masked = dict(batch, attention_mask=batch["attention_mask"].clone())
    masked["attention_mask"][2, -3] = 0
    assert plan_prompts(model, masked).unique == [0, 1, 2, 4]


def test_greedy_tokens_and_logits_match_the_plain_generate(tiny):
    model, batch, _ = tiny
    plain, shared, seen_plain, seen_shared, stats = both_ways(model, batch, do_sample=False)
    assert_same_steps(plain, shared)
    assert (stats.shared_calls, stats.rows_in, stats.rows_prefilled) == (1, 12, 3)


def test_sampled_tokens_and_scores_match_the_plain_generate(tiny):
    """Each copy samples its own completion: the G copies of a prompt do not all get the same one."""
    model, batch, _ = tiny
    plain, shared, *_ = both_ways(model, batch, do_sample=True, temperature=1.0, top_k=20)
    assert_same_steps(plain, shared)
    completions = shared.sequences[:, batch["input_ids"].shape[1]:]
    copies = [completions[i].tolist() for i, prompt in enumerate(ORDER) if prompt == 0]
    assert len({tuple(c) for c in copies}) > 1


def test_qwen2_vl_greedy_and_sampled_steps_match_the_plain_generate(tiny, qwen2_vl):
    _, batch, _ = tiny
    for settings in ({"do_sample": False}, {"do_sample": True, "top_k": 20}):
        plain, shared, seen_plain, seen_shared, stats = both_ways(qwen2_vl, batch, **settings)
        assert_same_steps(plain, shared)
        assert seen_shared.lm[0] == (3, batch["input_ids"].shape[1] - 1)
        assert (stats.shared_calls, stats.rows_prefilled) == (1, 3)


def test_prefill_runs_on_the_distinct_prompts_only(tiny):
    model, batch, _ = tiny
    rows, width = batch["input_ids"].shape
    _, _, seen_plain, seen_shared, _ = both_ways(model, batch, do_sample=False)
    decoding = [(rows, 1)] * (NEW_TOKENS - 1)
    assert seen_plain.lm == [(rows, width), *decoding]
    # the 3 distinct prompts but their last token, then that token for every row, then the same decoding
    assert seen_shared.lm == [(3, width - 1), (rows, 1), *decoding]
    assert seen_plain.images == [4 * 1 + 4 * 4 + 4 * 1]
    assert seen_shared.images == [1 + 4 + 1]


def test_through_a_lora_adapter(tiny_model_dir, tiny):
    """PEFT's `generate` reaches the wrapped model's: installed through the adapter, the same greedy tokens."""
    from peft import LoraConfig, get_peft_model

    _, batch, _ = tiny
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapted.eval()
    with torch.no_grad():
        plain = adapted.generate(**batch, do_sample=False, max_new_tokens=NEW_TOKENS)
        (stats,) = share_prefill(adapted)
        shared = adapted.generate(**batch, do_sample=False, max_new_tokens=NEW_TOKENS)
    assert (stats.shared_calls, stats.rows_prefilled) == (1, 3)
    assert torch.equal(plain, shared)


def test_batches_it_does_not_handle_run_the_plain_generate(tiny):
    model, batch, batch_of = tiny
    rows, width = batch["input_ids"].shape
    (stats,) = share_prefill(model)
    before = stats.shared_calls
    distinct = batch_of([0, 3, 1])
    seen = Rows(model)
    generate(model, distinct, do_sample=False)  # no repeated prompt
    generate(model, batch, do_sample=False, num_beams=2)  # beam search
    seen.close()
    assert stats.shared_calls == before
    assert seen.lm[0] == (3, distinct["input_ids"].shape[1])
    assert (rows * 2, width) in seen.lm  # the beam search's own prefill of every row
    share_prefill(model, enabled=False)
    assert "generate" not in model.__dict__


def test_trl_generation_gives_the_plain_completions(tmp_path, tiny_model_dir, demo_data):
    """TRL's own generation step (transformers `generate`, sampling) on a 1-image and a 4-image prompt, 3
    completions each: the same completions with and without the shared prefill, under the same seed."""
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=4)
    load_reward_module(DENSE)
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=6, num_generations=3, max_completion_length=8,
        max_steps=1, report_to=[], use_cpu=True, bf16=False, seed=0, save_strategy="no",
    )
    trainer = build_grpo_trainer(
        load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))),
        AutoProcessor.from_pretrained(tiny_model_dir),
        build_reward_funcs(["distinct_chars"], {}),
        args,
        train_dataset=with_images(rows_to_dataset([rows[0], rows[3]]), max_pixels=112 * 112),
    )
    (stats,) = share_prefill(trainer.model)  # installed by build_grpo_trainer: its counters
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))

    def completions():
        torch.manual_seed(1)
        return trainer._generate_and_score_completions(batch)["completion_ids"]

    shared = completions()
    assert (stats.shared_calls, stats.rows_in, stats.rows_prefilled) == (1, 6, 2)
    share_prefill(trainer.model, enabled=False)
    plain = completions()
    assert stats.calls == 1, "the plain generate still went through the wrapper"
    assert torch.equal(shared, plain)
    assert len({tuple(c) for c in plain.tolist()}) > 2, "sampling gave the copies the same completion"


@pytest.mark.slow
def test_two_process_zero3_step_is_the_same_with_and_without_the_shared_prefill(tmp_path, tiny_model_dir, demo_data):
    """One GRPO step of the real launcher (2 CPU processes, ZeRO-3 with parameters fetched module by module during
    generation, reference model and old policy) with and without `--shared_prefill`: the same loss, and the same
    weights after one plain SGD step (lr 1, so the weight change is the clipped gradient)."""
    from safetensors.torch import load_file

    from test_image_dedupe import launch, mixed_prompts

    data, ds_config, flags = mixed_prompts(tmp_path, demo_data)
    flags = [*flags, "--ds3_gather_for_generation", "false"]
    shared_log = launch(tmp_path / "shared", data, ds_config, *flags)
    plain_log = launch(tmp_path / "plain", data, ds_config, *flags, "--shared_prefill", "false")
    # each process: 2 distinct prompts in its 8 rows (the main process logs it)
    assert "shared prefill: 2 prompts prefilled for a generation batch of 8 rows" in shared_log, shared_log[-4000:]
    assert "shared prefill:" not in plain_log

    def loss(folder):
        state = json.loads((folder / "checkpoint-1" / "trainer_state.json").read_text())
        return [h["loss"] for h in state["log_history"] if "loss" in h]

    assert loss(tmp_path / "shared") == pytest.approx(loss(tmp_path / "plain"), abs=1e-5)
    base = load_file(tiny_model_dir / "model.safetensors")
    shared = load_file(tmp_path / "shared" / "model.safetensors")
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    assert any(not torch.equal(base[k], plain[k]) for k in base), "the step did not train"
    for name in base:
        torch.testing.assert_close(shared[name] - base[name], plain[name] - base[name], **TOL,
                                   msg=lambda m, n=name: f"{n}: {m}")
