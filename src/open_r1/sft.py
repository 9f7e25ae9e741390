"""Supervised warm start of Qwen2.5-VL before GRPO, with TRL's own SFTTrainer (no second framework needed).

    python -m open_r1.sft --config data_config/sft_demo.yaml
    torchrun --nproc_per_node 8 src/open_r1/sft.py --deepspeed local_scripts/zero3.json --config ... [--use_peft]

Trains on Chain-of-Region targets (or the rows' answers, `--targets answer`) behind GRPO's prompts and saves model
+ processor to --output_dir, which `grpo_jsonl.py --model_name_or_path` loads as it is (LoRA merged first).
"""

from __future__ import annotations

import logging

from trl import ModelConfig, SFTConfig, TrlParser, get_peft_config

from open_r1.cli import parse, run_main
from open_r1.configs import SFTScriptArguments
from open_r1.data.dataset import split_for_validation, with_images
from open_r1.data.hub import read_rows
from open_r1.modeling.checkpoints import restore_weights_for_resume
from open_r1.modeling.loading import load_model_and_processor
from open_r1.modeling.prompt_record import write_prompt_record
from open_r1.tools import build_toolset, load_tool_module
from open_r1.training.run import configure_logging, resume_checkpoint
from open_r1.training.sft import build_sft_trainer, save_for_grpo, sft_dataset, tool_episodes

logger = logging.getLogger(__name__)


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    rows = read_rows(script_args)
    if script_args.tool_module:
        load_tool_module(script_args.tool_module)
    toolset = build_toolset(script_args.tools, max_pixels=script_args.max_pixels) if script_args.tools else None
    dataset = sft_dataset(rows, script_args.targets, script_args.question_template, toolset)
    train_dataset, eval_dataset = split_for_validation(dataset, script_args.val_split_ratio, training_args.seed)
    logger.info("%d training rows, %d held out", len(train_dataset), len(eval_dataset) if eval_dataset else 0)

    model, processor = load_model_and_processor(model_args, training_args, script_args)

    if toolset is not None:
        def decode(part):
            return tool_episodes(part, processor, toolset, script_args.max_pixels)
    else:
        def decode(part):
            return with_images(part, script_args.max_pixels)
    trainer = build_sft_trainer(
        model,
        processor,
        training_args,
        train_dataset=decode(train_dataset),
        eval_dataset=decode(eval_dataset) if eval_dataset else None,
        peft_config=get_peft_config(model_args),
    )
    if training_args.process_index == 0:  # GRPO, evaluation and predict ask the model as it was trained
        write_prompt_record(training_args.output_dir, script_args.question_template)
    checkpoint = resume_checkpoint(training_args)
    restore_weights_for_resume(trainer.model, checkpoint, training_args)
    trainer.train(resume_from_checkpoint=checkpoint)
    save_for_grpo(trainer, processor, model_args, training_args)


def cli() -> None:
    script_args, training_args, model_args = parse(TrlParser((SFTScriptArguments, SFTConfig, ModelConfig)))
    configure_logging(training_args)  # INFO on the main process, WARNING on the other ranks
    main(script_args, training_args, model_args)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(cli)
