"""GRPO training of Qwen2.5-VL on jsonl files and image folders, with TRL's own GRPOTrainer.

    python -m open_r1.grpo_jsonl --model_name_or_path Qwen/Qwen2.5-VL-3B-Instruct \
        --data_file_paths a.jsonl:b.jsonl --image_folders imgs_a/:imgs_b/ \
        --reward_funcs format haversine --output_dir output/run1

    torchrun --nproc_per_node 8 src/open_r1/grpo_jsonl.py --deepspeed local_scripts/zero3.json ...
    python -m open_r1.grpo_jsonl --config data_config/demo.yaml
"""

from __future__ import annotations

import logging

from trl import GRPOConfig, ModelConfig, TrlParser, get_peft_config

from open_r1.cli import parse, run_main
from open_r1.configs import GRPOScriptArguments
from open_r1.modeling.checkpoints import restore_weights_for_resume
from open_r1.modeling.loading import load_model_and_processor
from open_r1.modeling.prompt_record import trained_question_template, write_prompt_record
from open_r1.rewards import build_reward_funcs, load_reward_module
from open_r1.schedules import parse_weight_schedules
from open_r1.tools import build_toolset, load_tool_module
from open_r1.training.callbacks import preempted
from open_r1.training.grpo import build_grpo_trainer
from open_r1.training.grpo_data import grpo_datasets
from open_r1.training.run import configure_logging, mark_finished, resume_point

logger = logging.getLogger(__name__)


def main(script_args: GRPOScriptArguments, training_args: GRPOConfig, model_args: ModelConfig) -> None:
    if script_args.reward_module:
        load_reward_module(script_args.reward_module)
    if script_args.tool_module:
        load_tool_module(script_args.tool_module)
    toolset = build_toolset(script_args.tools, max_pixels=script_args.max_pixels) if script_args.tools else None
    if toolset is not None and "tool_use" not in script_args.reward_funcs:
        # its step logs (calls per episode, tool error rate) at weight 0, so the run's rewards stay as chosen
        script_args.reward_funcs = [*script_args.reward_funcs, "tool_use"]
        n = len(script_args.reward_funcs) - 1
        training_args.reward_weights = [*(training_args.reward_weights or [1.0] * n), 0.0]
        logger.info("--tools without the tool_use reward: added at weight 0 for its logs (tools/...)")
    # a warm start's recorded prompt, unless one is given: GRPO asks the model as SFT taught it
    script_args.question_template = trained_question_template(script_args.question_template,
                                                              model_args.model_name_or_path)
    reward_funcs = build_reward_funcs(script_args.reward_funcs, vars(script_args))
    resume = resume_point(training_args)
    if resume.finished:
        return
    train_dataset, eval_dataset = grpo_datasets(script_args, training_args, resume.checkpoint)

    model, processor = load_model_and_processor(model_args, training_args, script_args)

    trainer = build_grpo_trainer(
        model,
        processor,
        reward_funcs,
        training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=get_peft_config(model_args),
        reward_max_failing_steps=script_args.reward_max_failing_steps,
        dedupe_images=script_args.dedupe_images,
        shared_prefill=script_args.shared_prefill,
        length_aware_micro_batches=script_args.length_aware_micro_batches,
        reward_weight_schedules=parse_weight_schedules(script_args.reward_weight_schedules),
        toolset=toolset,
    )
    if training_args.process_index == 0:  # evaluation and predict ask the model as it was trained
        write_prompt_record(training_args.output_dir, script_args.question_template)
    restore_weights_for_resume(trainer.model, resume.checkpoint, training_args)
    trainer.train(resume_from_checkpoint=resume.checkpoint)
    if preempted(trainer):
        return  # not done: its checkpoint is where the same command resumes
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(training_args.output_dir)
        mark_finished(training_args, trainer.state.global_step, trainer.state.max_steps)
        logger.info("model and processor saved to %s", training_args.output_dir)


def cli() -> None:
    script_args, training_args, model_args = parse(TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig)))
    configure_logging(training_args)  # INFO on the main process, WARNING on the other ranks
    main(script_args, training_args, model_args)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(cli)
