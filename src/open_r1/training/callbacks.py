"""Training callbacks: a run fails loudly instead of silently learning nothing, stops cleanly when the cluster
asks it to, stops when a reward keeps failing, and draws each epoch's rows the same way when resumed.

Each decision that ranks must share (stop now, save now) is combined across ranks at the step boundary, where
every rank is anyway, so all of them take it together.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from open_r1.compat import reseed_repeat_sampler
from open_r1.rewards.registry import RewardFaultError

logger = logging.getLogger(__name__)


def sum_over_ranks(values: Sequence[int]) -> list[int]:
    """Element-wise sum of `values` over every rank (the values themselves when not distributed). A collective:
    every rank must call it at the same point."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    from accelerate import PartialState

    tensor = torch.tensor(list(values), dtype=torch.int64, device=PartialState().device)
    dist.all_reduce(tensor)
    return [int(v) for v in tensor.tolist()]


class NoLearningSignalCallback(TrainerCallback):
    """Warn when GRPO has no signal, or almost none, to learn from.

    GRPO's advantage is a reward minus its group's mean: when every completion of a group scores the same, that
    group adds nothing to the gradient. Two ways a run ends up there: every reward is zero (a model that never
    writes the answer format gets 0 from every geo reward), or the model samples the same completion for every
    prompt (an SFT warm start trained to near-certainty, at a low temperature). After `patience` consecutive logs
    where every group is flat, or at least `flat_share` of them (`frac_reward_flat_groups`, logged by
    `open_r1.training.reward_spread`), this warns loudly (once per streak), naming the likely causes.

    A third way is success: a model that lands every completion within 25 km of its photo (`geo/within_25km` of
    1.0 at every log of the streak) has solved those rows. Its groups are flat too, but the causes above would
    mislead, so that streak gets its own headline, ROWS SOLVED, and the remedy: harder rows.
    """

    def __init__(self, patience: int = 3, flat_share: float = 0.9):
        self.patience = patience
        self.flat_share = flat_share
        self.streak = 0
        self.solved_streak = 0
        self.warned = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        all_zero = logs.get("reward") == 0 and logs.get("reward_std", 0) == 0
        flat = max(logs.get("frac_reward_zero_std", 0.0), logs.get("frac_reward_flat_groups", 0.0))
        if all_zero or flat >= self.flat_share:
            self.streak += 1
            self.solved_streak = self.solved_streak + 1 if logs.get("geo/within_25km", 0.0) >= 1.0 else 0
        else:
            self.streak, self.solved_streak, self.warned = 0, 0, False
        if self.streak >= self.patience and not self.warned:
            self.warned = True
            if not state.is_world_process_zero:  # every rank reads the same gathered logs: one warning is enough
                return
            if self.solved_streak >= self.patience:
                logger.warning(
                    "ROWS SOLVED at step %d: every completion of the last %d logs landed within 25 km of its photo, "
                    "and %.0f%% of the groups of completions got identical rewards, so they add nothing to the "
                    "gradient: the model already solves these rows. Train on harder ones (`python -m "
                    "open_r1.difficulty --drop_solved`, or `--sample_by difficulty`), or stop here.",
                    state.global_step, self.solved_streak, 100 * flat,
                )
                return
            if all_zero:
                what = "every reward is zero"
            elif flat >= 1.0:
                what = "every group of completions got identical rewards"
            else:
                what = f"{flat:.0%} of the groups of completions got identical rewards"
            headline = "NO LEARNING SIGNAL" if all_zero or flat >= 1.0 else "LITTLE LEARNING SIGNAL"
            logger.warning(
                "\n%s\n%s at step %d: %s for %d logs in a row, so those groups add nothing to the gradient. %s"
                "Check that the model can write the answer format (warm-start with SFT, or add the `format` "
                "reward), that the rows carry labels (lat/lon) for the geo rewards, and that num_generations > 1. "
                "A model that samples the same completion for every prompt needs a higher --temperature (an SFT "
                "warm start trained to near-certainty does that); rows the model already solves every time can be "
                "left out with `python -m open_r1.difficulty --drop_solved`.\n%s",
                "!" * 100, headline, state.global_step, what, self.streak, budget_hint(args, logs), "!" * 100,
            )


def budget_hint(args: Any, logs: dict[str, float]) -> str:
    """The likeliest cause when episodes call tools and fill the completion budget: TRL's --max_completion_length
    covers the calls, the tool results (a zoom's crop included) and the answer, and cuts the answer short."""
    budget = getattr(args, "max_completion_length", None)
    longest = logs.get("completions/max_length", 0.0)
    if not budget or logs.get("tools/calls_per_episode", 0.0) <= 0 or longest < 0.9 * budget:
        return ""
    return (f"Episodes call tools and run to {longest:.0f} of the {budget} tokens of --max_completion_length, which "
            "in TRL counts the calls, the tool results and the answer after them: the answer is likely cut off, so "
            "raise --max_completion_length first. ")


PREEMPTION_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s is not None)


class PreemptionCallback(TrainerCallback):
    """On SIGTERM or SIGUSR1 (what Slurm sends before preempting a job or at its time limit, with `--signal`),
    save a checkpoint at the next step boundary and stop training; the same command then resumes from it.

    The handlers are installed on every rank while training; whichever ranks get the signal, the flag is summed
    over ranks at each step's end, so all ranks save the same step and stop together. Later signals change
    nothing (torchrun passes a SIGTERM it gets on to ranks that may have had it already; the save must go on).
    The handlers before are back after training; `restore()` puts them back after a run that raised. `stopped`
    tells the entry script not to save a final model for a run that is not done.
    """

    def __init__(self, signals: Sequence[int] = PREEMPTION_SIGNALS):
        self.signals = tuple(signals)
        self.received: int | None = None
        self.stopped = False
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum  # only a flag here: logging from a signal handler can deadlock

    def install(self) -> None:
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def on_train_begin(self, args, state, control, **kwargs):
        self.install()

    def on_step_end(self, args, state, control, **kwargs):
        (ranks,) = sum_over_ranks([self.received is not None])
        if not ranks or self.stopped:
            return
        if self.received is not None:
            logger.warning("rank %d received %s", args.process_index, signal.Signals(self.received).name)
        if state.global_step >= state.max_steps:
            return  # the last step: the run ends and saves as usual
        self.stopped = control.should_save = control.should_training_stop = True
        if state.is_world_process_zero:
            logger.warning(
                "preemption signal on %d rank(s): saving checkpoint-%d and stopping; the same command resumes from "
                "it", ranks, state.global_step,
            )

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()


class RewardFaultCallback(TrainerCallback):
    """Stop the run when a reward has failed on `max_failing_steps` consecutive steps (0: never), with the
    failure's traceback. A step counts as failing for a reward when it failed on any completion on any rank;
    steps that computed no rewards (reused generations) neither count nor break a streak. Reads the `faults`
    tally of `rewards.registry.BoundReward`; other reward functions are ignored."""

    def __init__(self, reward_funcs: Sequence, max_failing_steps: int = 10):
        self.rewards = [f for f in reward_funcs if hasattr(f, "faults")]
        self.max_failing_steps = max_failing_steps
        self.streaks = [0] * len(self.rewards)

    def on_step_end(self, args, state, control, **kwargs):
        if not self.rewards:
            return
        tallies = [reward.faults.take() for reward in self.rewards]
        summed = sum_over_ranks([sum(calls for calls, _ in tallies)] + [failed for _, failed in tallies])
        if not summed[0]:
            return
        self.streaks = [streak + 1 if failed else 0 for streak, failed in zip(self.streaks, summed[1:])]
        if not self.max_failing_steps or max(self.streaks) < self.max_failing_steps:
            return
        from accelerate.utils import gather_object

        index = max(range(len(self.streaks)), key=self.streaks.__getitem__)
        reward = self.rewards[index]
        seen = [what for what in gather_object([reward.faults.last]) if what]
        raise RewardFaultError(
            f"reward {reward.__name__!r} failed on {self.streaks[index]} consecutive steps (--reward_max_failing_steps "
            f"{self.max_failing_steps}); the run stops at step {state.global_step}. Its latest failure:\n"
            f"{seen[0] if seen else '(not recorded)'}"
        )


class EpochSeedCallback(TrainerCallback):
    """Reseed TRL's `RepeatSampler` at each epoch's start from (seed, epoch).

    The sampler draws each epoch's order from one generator that runs on from epoch to epoch and has no
    `set_epoch`, so a run resumed in epoch e would draw epoch 0's order again. Seeded from (seed, epoch), epoch 0
    keeps TRL's own order and every later epoch is the same whether the run was resumed or not.
    """

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        reseed_repeat_sampler(train_dataloader, math.floor((state.epoch or 0) + 1e-6))


def preempted(trainer) -> bool:
    """Whether `trainer` stopped for a preemption signal (its state is in the checkpoint it saved last)."""
    return any(isinstance(cb, PreemptionCallback) and cb.stopped for cb in trainer.callback_handler.callbacks)
