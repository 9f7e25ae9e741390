"""Wire TRL's own `GRPOTrainer`; only the settings TRL leaves to the caller are decided here, and the callbacks
that make a run stop cleanly on preemption, stop on a reward failing step after step, and resume exactly."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence

from datasets import Dataset
from transformers import PreTrainedModel, ProcessorMixin
from trl import GRPOConfig, GRPOTrainer

from open_r1.compat import score_completion_tokens_only
from open_r1.errors import ArgumentError
from open_r1.modeling.chat_template import enable_tool_calls
from open_r1.modeling.image_dedupe import encode_images_once
from open_r1.modeling.loading import ensure_left_padding
from open_r1.modeling.shared_prefill import share_prefill
from open_r1.schedules import WeightSchedule
from open_r1.tools import ToolSet
from open_r1.training.callbacks import (
    EpochSeedCallback,
    NoLearningSignalCallback,
    PreemptionCallback,
    RewardFaultCallback,
)
from open_r1.training.length_groups import group_by_length
from open_r1.training.progress import ProgressLines, drop_dict_printers
from open_r1.training.reward_spread import track_reward_spread
from open_r1.training.reward_weights import RewardWeightScheduleCallback
from open_r1.training.run import resolve_reporting

logger = logging.getLogger(__name__)


def resolve_generation_backend(args: GRPOConfig) -> GRPOConfig:
    """Use vLLM only when it is installed; otherwise fall back to transformers `generate` with a notice."""
    if args.use_vllm and importlib.util.find_spec("vllm") is None:
        logger.warning("vLLM is not installed: generating with transformers instead (much slower on GPUs)")
        args.use_vllm = False
    return args


def build_grpo_trainer(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    reward_funcs: Sequence[Callable],
    args: GRPOConfig,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    peft_config=None,
    reward_max_failing_steps: int = 10,
    dedupe_images: bool = True,
    shared_prefill: bool = True,
    length_aware_micro_batches: bool = True,
    reward_weight_schedules: Sequence[WeightSchedule] = (),
    toolset: ToolSet | None = None,
) -> GRPOTrainer:
    """A `GRPOTrainer` whose processor pads on the left, whatever the caller handed in. It saves and stops at
    the next step on SIGTERM/SIGUSR1, and stops when a reward has failed on `reward_max_failing_steps`
    consecutive steps (0: never). With `dedupe_images`, the policy's and the reference model's vision towers
    encode each distinct image of a batch once (GRPO repeats every prompt's images num_generations times). With
    `shared_prefill`, the policy's `generate` (transformers generation) prefills each distinct prompt once.
    With `length_aware_micro_batches`, rows of similar length share a gradient-accumulation micro-batch, each cut
    to its longest row, where that leaves the loss and gradient unchanged (training/length_groups.py).
    `reward_weight_schedules` move those rewards' weights in TRL's own weight tensor at each step.
    With a `toolset`, episodes are multi-turn: TRL's own tool loop (`tools=`, and `environment_factory=` for the
    photo tools, which need each rollout's row), up to `args.max_tool_calling_iterations` rounds of calls, with
    the processor given Qwen2.5's tool-call format."""
    if not reward_funcs:
        raise ArgumentError("no reward functions: pass --reward_funcs (see open_r1.rewards.REWARDS for the names)")
    if args.reward_weights is not None and len(args.reward_weights) != len(reward_funcs):
        names = [getattr(f, "__name__", str(f)) for f in reward_funcs]
        raise ArgumentError(f"--reward_weights has {len(args.reward_weights)} values for {len(names)} rewards {names}")
    resolve_generation_backend(args)
    resolve_reporting(args)
    score_completion_tokens_only()  # CPU: the log-prob head skips the prompt positions, as TRL does on GPUs
    tool_kwargs = {}
    if toolset is not None and toolset.names:
        enable_tool_calls(processor)
        tool_kwargs = {"tools": list(toolset.functions), "environment_factory": toolset.environment_factory}
        logger.info("tools %s, at most %s rounds of calls per episode", list(toolset.names),
                    args.max_tool_calling_iterations or "unlimited")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=ensure_left_padding(processor),
        peft_config=peft_config,
        callbacks=[
            NoLearningSignalCallback(),
            PreemptionCallback(),
            RewardFaultCallback(reward_funcs, reward_max_failing_steps),
            EpochSeedCallback(),
            ProgressLines(),
        ],
        **tool_kwargs,
    )
    drop_dict_printers(trainer)
    track_reward_spread(trainer)  # frac_reward_flat_groups, read by NoLearningSignalCallback
    if reward_weight_schedules:
        trainer.add_callback(RewardWeightScheduleCallback(trainer, reward_weight_schedules))
    if dedupe_images:  # the reference model is TRL's own copy, loaded in GRPOTrainer's __init__
        encode_images_once(trainer.model)
        encode_images_once(trainer.ref_model)
    if shared_prefill:  # vLLM generation does not call the model's generate
        share_prefill(trainer.model)
    group_by_length(trainer, enabled=length_aware_micro_batches)
    return trainer
