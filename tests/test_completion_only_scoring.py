"""On a CPU, TRL's fused log-prob head scores only the completion tokens once GRPO or SFT is wired (as on GPUs):
the same per-token log-probs and gradients as scoring every position, for a fraction of the rows."""

from __future__ import annotations

import pytest
import torch

from open_r1.compat import score_completion_tokens_only


@pytest.fixture
def fused_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText
    from trl.trainer import utils as trl_utils

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    yield model
    score_completion_tokens_only(False)


def scored(model, compact: bool, rows_seen: list[int]):
    from trl.trainer import utils as trl_utils

    score_completion_tokens_only(compact)
    function = trl_utils._ChunkedLogProbFunction

    def counting(hidden, *args):
        rows_seen.append(hidden.shape[0])
        return function.apply(hidden, *args)

    torch.manual_seed(0)
    input_ids = torch.randint(0, 900, (2, 40))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :5] = 0  # left padding on the first row
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :-8] = -100  # 8 completion tokens, as TRL labels them
    model.zero_grad()
    trl_utils._ChunkedLogProbFunction = type("Counting", (), {"apply": staticmethod(counting)})
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    finally:
        trl_utils._ChunkedLogProbFunction = function
    logps = out.log_probs[:, -8:]
    (logps.sum() + out.entropy[:, -8:].sum()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), out.entropy[:, -8:].detach(), grads


def test_completion_only_scoring_matches_scoring_every_position(fused_model):
    every, only = [], []
    full_logps, full_entropy, full_grads = scored(fused_model, False, every)
    logps, entropy, grads = scored(fused_model, True, only)
    assert every == [2 * 39] and only == [2 * 8]  # every shifted position, then the labelled ones alone
    torch.testing.assert_close(logps, full_logps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, full_entropy, rtol=1e-5, atol=1e-5)
    assert grads.keys() == full_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], full_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_switch_wraps_once_and_restores_trl():
    from trl.trainer import utils as trl_utils

    score_completion_tokens_only(False)
    assert not trl_utils._use_triton(torch.device("cpu"))
    score_completion_tokens_only()
    score_completion_tokens_only()  # twice: still one wrapper around TRL's own
    assert trl_utils._use_triton(torch.device("cpu"))
    assert trl_utils._use_triton.__wrapped__.__name__ == "_use_triton"
    score_completion_tokens_only(False)
    assert not trl_utils._use_triton(torch.device("cpu"))


def test_grpo_wiring_turns_it_on(tmp_path, tiny_model_dir, demo_data):
    from transformers import AutoProcessor
    from trl import GRPOConfig, ModelConfig
    from trl.trainer import utils as trl_utils

    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import load_model
    from open_r1.rewards import build_reward_funcs
    from open_r1.training.grpo import build_grpo_trainer

    score_completion_tokens_only(False)
    train, _, images = demo_data
    rows = load_rows(str(train), str(images))[:2]
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_steps=1,
                      report_to=[], use_cpu=True, bf16=False, save_strategy="no")
    build_grpo_trainer(load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))),
                       AutoProcessor.from_pretrained(tiny_model_dir), build_reward_funcs(["format"], {}), args,
                       train_dataset=with_images(rows_to_dataset(rows), max_pixels=112 * 112))
    try:
        assert trl_utils._use_triton(torch.device("cpu"))
    finally:
        score_completion_tokens_only(False)


def test_sft_wiring_turns_it_on(tmp_path, tiny_model_dir, demo_data):
    from trl import ModelConfig, SFTConfig
    from trl.trainer import utils as trl_utils

    from open_r1.data import load_rows
    from open_r1.data.dataset import with_images
    from open_r1.modeling.loading import load_model, load_processor
    from open_r1.training.sft import build_sft_trainer, sft_dataset

    score_completion_tokens_only(False)
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=2)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to=[], use_cpu=True, bf16=False,
                     save_strategy="no", max_length=None)
    build_sft_trainer(load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))),
                      load_processor(str(tiny_model_dir), max_pixels=112 * 112), args,
                      train_dataset=with_images(sft_dataset(rows), 112 * 112))
    try:
        assert trl_utils._use_triton(torch.device("cpu"))
    finally:
        score_completion_tokens_only(False)
