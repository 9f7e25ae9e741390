"""How many of a step's groups carry a learning signal: the share of groups whose completions all got the same
total reward (`frac_reward_flat_groups` in the step logs).

TRL's `frac_reward_zero_std` tests the group's std against an absolute 1e-8, which the float32 std of eight equal
rewards misses, so a run sampling one completion per prompt logs 0.0 there. This compares each group's spread with
a tolerance relative to its rewards, on the weighted sum TRL's advantages use.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from open_r1 import compat

FLAT_METRIC = "frac_reward_flat_groups"
_MARKER = "_open_r1_reward_spread"


def flat_group_share(rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int) -> float:
    """Share of the groups (consecutive `num_generations` rows) whose weighted total rewards are all equal, up
    to 1e-6 of their magnitude. NaN rewards (a function that had nothing to score) count as absent, as in TRL."""
    if num_generations < 2 or rewards_per_func.numel() == 0:
        return 0.0
    totals = (rewards_per_func.float() * weights.float().to(rewards_per_func.device)).nansum(dim=1)
    totals[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    groups = totals.view(-1, num_generations)
    present = ~torch.isnan(groups)
    high = torch.where(present, groups, -torch.inf).max(dim=1).values  # plain numbers: any device
    low = torch.where(present, groups, torch.inf).min(dim=1).values
    scale = torch.where(present, groups.abs(), 0.0).max(dim=1).values.clamp(min=1.0)
    scored = present.sum(dim=1) >= 2
    flat = (high - low <= 1e-6 * scale) | ~scored
    return flat.float().mean().item()


def track_reward_spread(trainer: GRPOTrainer) -> None:
    """Log `frac_reward_flat_groups` at every step of `trainer` (from its reward computation, which returns every
    process's rewards gathered, in group order)."""

    def observe(rewards_per_func: torch.Tensor) -> None:
        mode = "train" if trainer.model.training else "eval"
        generations = trainer.num_generations if mode == "train" else trainer.num_generations_eval
        share = flat_group_share(rewards_per_func, trainer.reward_weights, generations or 1)
        compat.trainer_metrics(trainer)[mode][FLAT_METRIC].append(share)

    compat.observe_rewards(trainer, observe, _MARKER)
