"""Wire TRL's own `SFTTrainer` for the warm start before GRPO; only what TRL leaves to the caller is here.

The dataset is conversational prompt-completion with an `images` column, the form TRL's vision collator
takes: the prompt is the very user turn GRPO builds (`prompt_messages`), the completion the SFT target, and
the loss covers the completion only (TRL's default for prompt-completion data), so SFT teaches the answer
and never the question.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, ProcessorMixin
from trl import ModelConfig, SFTConfig, SFTTrainer

from open_r1.compat import score_completion_tokens_only, vision_language_collator, without_zero3
from open_r1.data.dataset import prompt_messages
from open_r1.data.images import load_image
from open_r1.data.rows import Row
from open_r1.data.sft_targets import TARGET_CHAIN_OF_REGION, sft_episodes, sft_targets
from open_r1.modeling.chat_template import enable_tool_calls, tools_system_text
from open_r1.modeling.loading import ensure_left_padding, load_model
from open_r1.tools import ToolSet
from open_r1.tools.episodes import EpisodeDecoder
from open_r1.training.progress import ProgressLines, drop_dict_printers
from open_r1.training.run import resolve_reporting

logger = logging.getLogger(__name__)


def sft_dataset(
    rows: Sequence[Row],
    targets: str = TARGET_CHAIN_OF_REGION,
    question_template: str | None = None,
    toolset: ToolSet | None = None,
) -> Dataset:
    """Prompt-completion rows; images stay paths (`image_paths`) until `with_images` decodes them.

    With a `toolset`, every row is a whole conversation instead (`episode`, JSON, the prompt then the target's
    turns, tool calls included where a tool applies: `data.sft_targets.sft_episodes`), which `tool_episodes`
    decodes; TRL's vision collator carries images inside tool turns only for such conversations."""
    if toolset is not None and toolset.names:
        episodes = sft_episodes(rows, toolset.names, targets)
        return Dataset.from_list([
            {"id": row.id, "episode": json.dumps(prompt_messages(row, question_template) + episode),
             "image_paths": row.image_paths, "source": row.source}
            for row, episode in zip(rows, episodes)
        ])
    records = [
        {
            "id": row.id,
            "prompt": prompt_messages(row, question_template),
            "completion": [{"role": "assistant", "content": target}],
            "image_paths": row.image_paths,
            "source": row.source,
        }
        for row, target in zip(rows, sft_targets(rows, targets))
    ]
    return Dataset.from_list(records)


def tool_episodes(dataset: Dataset, processor: ProcessorMixin, toolset: ToolSet, max_pixels: int | None) -> Dataset:
    """Decode a tool `sft_dataset` on access: images, tool turns run, the tool list as the system turn; the
    processor gets the tool-call chat template."""
    enable_tool_calls(processor)
    return dataset.with_transform(EpisodeDecoder(toolset, max_pixels, tools_system_text(processor, toolset.schemas())))


class AssistantTurnsOnly:
    """TRL's vision collator for whole conversations, with the loss on the assistant turns only (their text, tool
    calls and `<|im_end|>`), never on the prompt, the tool list or the tool results.

    TRL's own `assistant_only_loss` refuses vision datasets before transformers 5.18, whose processors mark the
    assistant tokens before the image tokens are expanded; here the turns are found in the final token ids,
    between each `<|im_start|>assistant\n` and its `<|im_end|>`."""

    def __init__(self, collator: Any, tokenizer: Any):
        self.collator = collator
        self.start = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        n = len(self.start)
        for row, ids in enumerate(batch["input_ids"].tolist()):
            inside = False
            for i, token in enumerate(ids):
                if not inside and i >= n and ids[i - n : i] == self.start:
                    inside = True
                if inside:
                    keep[row, i] = True
                    inside = token != self.end
        batch["labels"][~keep] = -100
        return batch


def build_sft_trainer(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    args: SFTConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    peft_config=None,
) -> SFTTrainer:
    """An `SFTTrainer` for lazily decoded image datasets.

    `remove_unused_columns` is forced off: the image decoder reads `image_paths`, which the Trainer would
    otherwise drop before the transform runs. Whole conversations (tool episodes) train on the assistant turns
    only (`AssistantTurnsOnly`), like prompt-completion rows train on the completion only.
    """
    if args.remove_unused_columns:
        args.remove_unused_columns = False
    collator = None
    if "episode" in train_dataset.column_names:
        collator = AssistantTurnsOnly(vision_language_collator(processor, args.max_length), processor.tokenizer)
    resolve_reporting(args)
    score_completion_tokens_only()  # CPU: the log-prob head skips the prompt positions, as TRL does on GPUs
    trainer = SFTTrainer(
        data_collator=collator,
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=ensure_left_padding(processor),
        peft_config=peft_config,
        callbacks=[ProgressLines()],
    )
    drop_dict_printers(trainer)  # one [geo-r] line per log (step, loss, s/step, ETA), as GRPO's
    return trainer


def save_for_grpo(trainer: SFTTrainer, processor: ProcessorMixin, model_args: ModelConfig, args: SFTConfig) -> None:
    """Save a checkpoint that `grpo_jsonl.py --model_name_or_path <args.output_dir>` loads directly: full weights and
    the processor. A LoRA run keeps its adapter in `output_dir/adapter` and writes the merged model; the base
    is reloaded for the merge because under ZeRO-3 the trained model's weights are partitioned."""
    from peft import PeftModel

    output_dir = args.output_dir
    if not isinstance(trainer.model, PeftModel):
        trainer.save_model(output_dir)
    else:
        adapter_dir = os.path.join(output_dir, "adapter")
        trainer.save_model(adapter_dir)  # gathers ZeRO-3 shards on every rank
        if trainer.accelerator.is_main_process:
            # the base in full precision even after QLoRA: an adapter merged into k-bit weights loses precision
            full = dataclasses.replace(model_args, load_in_4bit=False, load_in_8bit=False)
            with without_zero3():  # one process loads whole weights; ZeRO-3 would wait for the other ranks
                base = load_model(full, args)
            merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
            merged.save_pretrained(output_dir)
            logger.info("LoRA adapter in %s, merged model in %s", adapter_dir, output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
        logger.info("model and processor saved to %s", output_dir)
    trainer.accelerator.wait_for_everyone()


@torch.no_grad()
def greedy_completions(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    rows: Sequence[Row],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    max_pixels: int | None = None,
    question_template: str | None = None,
) -> list[str]:
    """Greedy completions for rows behind GRPO's prompts: how a warm start is judged (does it write the
    format the rewards parse?) before any reward is involved."""
    from trl import prepare_multimodal_messages

    ensure_left_padding(processor)
    was_training = model.training
    model.eval()
    completions: list[str] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        images = [[load_image(p, max_pixels, where=row.source) for p in row.image_paths] for row in batch]
        texts = [
            processor.apply_chat_template(
                prepare_multimodal_messages(prompt_messages(row, question_template), imgs),
                tokenize=False,
                add_generation_prompt=True,
            )
            for row, imgs in zip(batch, images)
        ]
        inputs = processor(images=images, text=texts, padding=True, return_tensors="pt").to(model.device)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        completions += processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    model.train(was_training)
    return completions
