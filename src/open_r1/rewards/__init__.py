"""Reward functions for TRL's GRPOTrainer, registered by name.

    from open_r1.rewards import REWARDS, build_reward_funcs, load_reward_module
    load_reward_module("my_rewards.py")            # optional: the user's own rewards
    funcs = build_reward_funcs(["format", "haversine"], {"tau_start": 2000.0})
    GRPOTrainer(..., reward_funcs=funcs)

Geo rewards (`format`, `haversine`, `hierarchy`, `geohash`, `geoguessr`, `georpiecewise`, `within_km`) live in
`rewards.geo`, generic ones for non-geo rows (`accuracy`, `iou`) in `rewards.generic`. Step metrics are
reported through TRL's `log_metric` hook and show up in the trainer's logs as `geo/...` and `generic/...`.
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
