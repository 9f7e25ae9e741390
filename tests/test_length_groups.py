"""Length-aware micro-batches (open_r1.training.length_groups): rows keep their images and tokens when regrouped,
each micro-batch is cut to its longest row, and TRL's own loss and the accumulated gradient equal those of TRL's
shuffled micro-batches for the loss types that allow it (1- and 4-photo rows mixed, completions of varied
length), in one process and under 2-process DeepSpeed ZeRO-3; `bnpo`, whose loss grouping changes, keeps TRL's."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoProcessor
from trl import GRPOConfig, ModelConfig

from conftest import REPO
from open_r1 import compat
from open_r1.data import load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.modeling.loading import load_model
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.training.grpo import build_grpo_trainer
from open_r1.training.length_groups import (
    EXACT_LOSS_TYPES,
    PADDING_METRICS,
    group_by_length,
    regroup,
    trim,
    why_plain,
)

DENSE = str(REPO / "tests" / "fixtures" / "dense_reward.py")
TOL = dict(rtol=1e-5, atol=1e-5)


def synthetic_batch(prompts: list[int], completions: list[int], images: list[int], first: int = 0,
                    width_p: int = 10, width_c: int = 6) -> dict:
    """A TRL-shaped micro-batch: left-padded prompts, right-padded completions, each row's pixel rows (2 per
    image); every token, pixel and advantage holds the row's number (from `first`), so a test can tell whose."""
    ids = torch.arange(first, first + len(prompts)).unsqueeze(1)
    prompt_mask = (torch.arange(width_p) >= width_p - torch.tensor(prompts).unsqueeze(1)).long()
    completion_mask = (torch.arange(width_c) < torch.tensor(completions).unsqueeze(1)).long()
    return {
        "prompt_ids": torch.where(prompt_mask.bool(), ids, -1), "prompt_mask": prompt_mask,
        "completion_ids": torch.where(completion_mask.bool(), ids, -1), "completion_mask": completion_mask,
        "old_per_token_logps": completion_mask * ids.float(),
        "mm_token_type_ids": torch.cat([prompt_mask, torch.zeros_like(completion_mask)], 1),
        "advantages": ids.squeeze(1).float(),
        "pixel_values": torch.cat([torch.full((2 * n, 3), float(first + i)) for i, n in enumerate(images)]),
        "image_grid_thw": torch.tensor([[1, 1, 2]] * sum(images)),
        "num_images": list(images),
        "num_items_in_batch": torch.tensor(15),
    }


def test_rows_move_with_their_images_and_each_micro_batch_is_cut_to_its_longest_row():
    prompts, completions, images = [3, 9, 3, 3, 9, 3], [2, 6, 5, 1, 2, 3], [1, 4, 1, 1, 4, 1]
    plain = [synthetic_batch(prompts[i:i + 2], completions[i:i + 2], images[i:i + 2], first=i) for i in (0, 2, 4)]
    groups = regroup(plain, torch.Generator().manual_seed(0))
    assert len(groups) == 3 and all(len(g["num_images"]) == 2 for g in groups)
    seen = set()
    for g in groups:
        rows = g["advantages"].long().tolist()
        seen.update(rows)
        assert len({prompts[r] for r in rows}) == 1, "rows of one prompt length share a micro-batch"
        assert g["prompt_ids"].size(1) == prompts[rows[0]]  # cut to the prompt, no padding column left
        assert g["completion_ids"].size(1) == max(completions[r] for r in rows)
        assert g["old_per_token_logps"].shape == g["completion_ids"].shape
        assert g["mm_token_type_ids"].size(1) == g["prompt_ids"].size(1) + g["completion_ids"].size(1)
        assert (g["prompt_ids"] == g["advantages"].long().unsqueeze(1)).all()
        for r, ids, mask in zip(rows, g["completion_ids"], g["completion_mask"], strict=True):
            assert ids[mask.bool()].tolist() == [r] * completions[r]
        # each row's pixel rows, in row order: 2 per image, holding the row's number
        expected = torch.cat([torch.full((2 * images[r], 3), float(r)) for r in rows])
        assert torch.equal(g["pixel_values"], expected) and g["num_images"] == [images[r] for r in rows]
        assert g["image_grid_thw"].size(0) == sum(g["num_images"]) and int(g["num_items_in_batch"]) == 15
    assert seen == set(range(6))
    orders = {tuple(tuple(g["advantages"].long().tolist()) for g in regroup(plain, torch.Generator().manual_seed(s)))
              for s in range(8)}
    assert len(orders) > 1, "the micro-batches' order comes from the step's seed"
    # pad_to_multiple_of: widths rounded up, never past the batch's
    cut = trim(plain[0], pad_to_multiple_of=4)
    assert cut["prompt_ids"].size(1) == 10 and cut["completion_ids"].size(1) == 6
    no_tokens = {**plain[0], "completion_mask": torch.zeros_like(plain[0]["completion_mask"])}
    assert trim(no_tokens)["completion_ids"].size(1) == 1  # a log-prob slice of -0 columns takes the whole row


@pytest.mark.parametrize(("change", "kept"), [
    ({}, False), ({"loss_type": "bnpo"}, True), ({"loss_type": "cispo"}, True), ({"entropy_coef": 0.01}, True),
    ({"use_adaptive_entropy": True}, True), ({"top_entropy_quantile": 0.2}, True), ({"aux_loss_enabled": True}, True),
    ({"steps_per_generation": 4}, True), ({"gradient_accumulation_steps": 4}, False),
])
def test_the_plain_path_stays_where_grouping_would_move_the_loss(change, kept):
    """Several generation batches per optimizer step (accumulation 4, 2 micro-batches each) still sum the same."""
    from types import SimpleNamespace

    defaults = {"entropy_coef": 0.0, "use_adaptive_entropy": False, "top_entropy_quantile": 1.0,
                "steps_per_generation": 2, "gradient_accumulation_steps": 2}
    args = SimpleNamespace(**{k: change.get(k, v) for k, v in defaults.items()})
    trainer = SimpleNamespace(args=args, loss_type=change.get("loss_type", "dapo"),
                              aux_loss_enabled=change.get("aux_loss_enabled", False))
    assert (why_plain(trainer) is not None) == kept


def trainer_for(tmp_path, tiny_model_dir, demo_data, loss_type: str):
    train, _, images = demo_data
    rows = load_rows(str(train), str(images), max_rows=4)
    assert [len(r.image_paths) for r in rows] == [1, 1, 1, 4]
    load_reward_module(DENSE)
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2, num_generations=4,
        max_completion_length=8, max_steps=1, beta=0.04, num_iterations=2, loss_type=loss_type, report_to=[],
        use_cpu=True, bf16=False, seed=0, save_strategy="no",
    )
    return build_grpo_trainer(
        load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))), AutoProcessor.from_pretrained(tiny_model_dir),
        build_reward_funcs(["distinct_chars"], {}), args,
        train_dataset=with_images(rows_to_dataset([rows[0], rows[3]]), max_pixels=112 * 112),
        length_aware_micro_batches=False,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model_dir, demo_data):
    """A trainer and TRL's two shuffled micro-batches of one generation batch (a 1-photo and a 4-photo prompt,
    4 completions each), the completions then cut to lengths 2-8 as if they had stopped there."""
    trainer = trainer_for(tmp_path_factory.mktemp("grpo"), tiny_model_dir, demo_data, "dapo")
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2  # set by Trainer's training loop
    trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    micro_batches = trainer._buffered_inputs
    lengths = iter([2, 8, 3, 5, 8, 2, 6, 4])
    for micro in micro_batches:
        for row in range(micro["completion_mask"].size(0)):
            micro["completion_mask"][row, next(lengths):] = 0
        micro["completion_ids"].masked_fill_(micro["completion_mask"] == 0, trainer.processing_class.tokenizer.pad_token_id)
    total = sum(m["completion_mask"].sum() for m in micro_batches)
    for micro in micro_batches:
        micro["num_items_in_batch"] = total
    assert sorted(n for m in micro_batches for n in m["num_images"]) == [1] * 4 + [4] * 4
    assert {len(set(m["num_images"])) for m in micro_batches} == {2}, "each shuffled micro-batch mixes both"
    return trainer, micro_batches


def accumulated(trainer, micro_batches) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TRL's reported loss (the micro-batches' sum) and the gradient after accumulating them."""
    trainer.model.zero_grad()
    total = torch.zeros(())
    for micro in micro_batches:
        loss = trainer.compute_loss(trainer.model, micro)
        loss.backward()
        total += loss.detach()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert any(".visual." in n for n in grads), "the vision tower got no gradient"
    return total, grads


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo", "bnpo"])
def test_loss_and_gradient_equal_trls_micro_batches(generated, loss_type):
    trainer, plain = generated
    trainer.loss_type = loss_type
    groups = regroup(plain, torch.Generator().manual_seed(1))
    width = plain[0]["prompt_ids"].size(1) + plain[0]["completion_ids"].size(1)
    widths = sorted(g["prompt_ids"].size(1) + g["completion_ids"].size(1) for g in groups)
    assert widths[0] < width - 60, "the 1-photo micro-batch kept the 4-photo prompt's padding"
    assert {len(set(g["num_images"])) for g in groups} == {1}
    plain_loss, plain_grads = accumulated(trainer, plain)
    loss, grads = accumulated(trainer, groups)
    if loss_type not in EXACT_LOSS_TYPES:  # grouping moves this loss: the trainer keeps TRL's micro-batches
        assert why_plain(trainer) is not None and not group_by_length(trainer)
        assert abs(float(loss) - float(plain_loss)) > 1e-4
        return
    assert why_plain(trainer) is None
    torch.testing.assert_close(loss, plain_loss, **TOL)
    assert grads.keys() == plain_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")


def test_the_trainer_hands_out_the_regrouped_micro_batches_and_logs_their_padding(generated):
    trainer, _ = generated
    trainer.loss_type = "dapo"
    assert group_by_length(trainer)
    trainer._step = 0  # Trainer's count of micro-batches: a new generation batch is due
    batch = next(iter(trainer.get_train_dataloader()))
    first = trainer._prepare_inputs(batch)  # generates, then regroups
    buffered = trainer._buffered_inputs
    trainer._step = 1
    second = trainer._prepare_inputs(batch)  # the buffer's next micro-batch, no new generation
    assert trainer._buffered_inputs is buffered and first is buffered[0] and second is buffered[1]
    assert sorted(len(set(b["num_images"])) for b in buffered) == [1, 1]  # 1-photo rows apart from 4-photo rows
    assert first["prompt_ids"].size(1) != second["prompt_ids"].size(1)
    metrics = compat.trainer_metrics(trainer)["train"]
    (plain,), (grouped,) = (metrics[name] for name in PADDING_METRICS)
    assert grouped < plain
    assert not group_by_length(trainer, enabled=False)  # TRL's own method again
    assert "_prepare_inputs" not in trainer.__dict__


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["dapo"])  # the default; grpo passes too (3 more minutes)
def test_two_process_zero3_step_is_the_same_with_and_without_length_aware_micro_batches(tmp_path, tiny_model_dir,
                                                                                     demo_data, loss_type):
    """One GRPO step of the real launcher (2 CPU processes, ZeRO-3, reference model and old policy), each process
    holding a 1-photo and a 4-photo prompt x 4 completions in 2 micro-batches: the same loss, and the same weights
    after one plain SGD step (lr 1, so the weight change is the clipped gradient)."""
    from test_image_dedupe import launch, mixed_prompts

    data, ds_config, flags = mixed_prompts(tmp_path, demo_data)
    at = flags.index("--per_device_train_batch_size")
    flags[at + 1] = "4"
    flags += ["--gradient_accumulation_steps", "2", "--loss_type", loss_type]
    launch(tmp_path / "grouped", data, ds_config, *flags)
    launch(tmp_path / "plain", data, ds_config, *flags, "--length_aware_micro_batches", "false")

    def logged(folder, name):
        state = json.loads((folder / "checkpoint-1" / "trainer_state.json").read_text())
        return [h[name] for h in state["log_history"] if name in h]

    assert logged(tmp_path / "grouped", "loss") == pytest.approx(logged(tmp_path / "plain", "loss"), abs=1e-5)
    (plain_share,), (share,) = (logged(tmp_path / "grouped", name) for name in PADDING_METRICS)
    assert share < plain_share - 0.1, "the micro-batches were not regrouped"
    assert not logged(tmp_path / "plain", PADDING_METRICS[1])
    base = load_file(tiny_model_dir / "model.safetensors")
    grouped = load_file(tmp_path / "grouped" / "model.safetensors")
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    assert any("visual" in k for k in base if not torch.equal(base[k], plain[k])), "the vision tower did not train"
    for name in base:
        torch.testing.assert_close(grouped[name] - base[name], plain[name] - base[name], **TOL,
                                   msg=lambda m, n=name: f"{n}: {m}")
