"""Reward functions for TRL's GRPOTrainer, registered by name.

    from open_r1.rewards import build_reward_funcs, load_reward_module
    load_reward_module("my_rewards.py")            # optional: the user's own rewards
    GRPOTrainer(..., reward_funcs=build_reward_funcs(["format", "haversine"], {"tau_start": 2000.0}))

Geo rewards live in `rewards.geo`, generic ones in `rewards.generic`; step metrics log as `geo/...`, `generic/...`.
"""

from open_r1.rewards import generic, geo, tool_use  # noqa: F401  (importing registers the rewards)
from open_r1.rewards.batch import completion_text
from open_r1.rewards.registry import REWARDS, BoundReward, build_reward_funcs, load_reward_module, register

__all__ = [
    "REWARDS",
    "BoundReward",
    "build_reward_funcs",
    "completion_text",
    "load_reward_module",
    "register",
]
