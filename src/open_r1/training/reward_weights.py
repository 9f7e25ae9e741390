"""Reward weights that follow a schedule over training, applied through TRL's own weighting.

`GRPOTrainer` keeps one weight per reward in its `reward_weights` tensor (from `GRPOConfig.reward_weights`) and
reads it each time it turns rewards into advantages, under both `multi_objective_aggregation` modes. Writing the
scheduled values into that tensor at each step's start is therefore all a schedule needs: the generation of
that step (which computes the rewards) uses them. A resumed run recomputes them from `global_step`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from transformers import TrainerCallback

from open_r1.compat import log_metric
from open_r1.errors import ArgumentError
from open_r1.schedules import WeightSchedule, training_progress

logger = logging.getLogger(__name__)


class RewardWeightScheduleCallback(TrainerCallback):
    """Set the scheduled rewards' entries of `trainer.reward_weights` at each step's start and log them as
    `reward_weights/<name>` (through the trainer's reward-metric hook, averaged per logging step like the
    reward means). Rewards without a schedule keep their weight."""

    def __init__(self, trainer, schedules: Sequence[WeightSchedule]):
        names = list(trainer.reward_func_names)
        unknown = [s.name for s in schedules if s.name not in names]
        if unknown:
            raise ArgumentError(f"reward weight schedules for {unknown}, which are not among the rewards {names}")
        self.trainer = trainer
        self.slots = [(names.index(s.name), s) for s in schedules]

    def apply(self, state) -> dict[str, float]:
        """Write the weights at `state`'s progress into the trainer's tensor; returns them by reward name."""
        progress = training_progress(state)
        weights = self.trainer.reward_weights
        current = {}
        for index, schedule in self.slots:
            weights[index] = schedule.at(progress)
            current[schedule.name] = float(weights[index])
        return current

    def on_train_begin(self, args, state, control, **kwargs):
        current = self.apply(state)
        if current and state.is_world_process_zero:
            logger.info("scheduled reward weights at step %d: %s", state.global_step, current)

    def on_step_begin(self, args, state, control, **kwargs):
        for name, value in self.apply(state).items():
            log_metric(self.trainer, f"reward_weights/{name}", value)
