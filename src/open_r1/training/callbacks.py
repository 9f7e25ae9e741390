"""Training callbacks that make a run fail loudly instead of silently learning nothing."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class NoLearningSignalCallback(TrainerCallback):
    """Warn when GRPO has no signal to learn from.

    GRPO's advantage is a reward minus its group's mean: when every completion of every group scores the same
    (typically all zero, because a model that never writes the answer format gets 0 from every geo reward),
    the policy gradient is exactly zero and the run burns GPU hours on nothing. After `patience` consecutive
    logs like that, this warns loudly (once per streak), naming the likely causes.
    """

    def __init__(self, patience: int = 3):
        self.patience = patience
        self.streak = 0
        self.warned = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        all_zero = logs.get("reward") == 0 and logs.get("reward_std", 0) == 0
        no_spread = logs.get("frac_reward_zero_std", 0.0) >= 1.0
        if all_zero or no_spread:
            self.streak += 1
        else:
            self.streak, self.warned = 0, False
        if self.streak >= self.patience and not self.warned:
            self.warned = True
            what = "every reward is zero" if all_zero else "every group of completions got identical rewards"
            logger.warning(
                "\n%s\nNO LEARNING SIGNAL at step %d: %s for %d logs in a row, so the GRPO advantages and the "
                "gradient are zero. Check that the model can write the answer format (warm-start with SFT, or add "
                "the `format` reward), that the rows carry labels (lat/lon) for the geo rewards, and that "
                "num_generations > 1 with a sampling temperature > 0.\n%s",
                "!" * 100, state.global_step, what, self.streak, "!" * 100,
            )
