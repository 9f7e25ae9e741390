"""Command-line settings of the rewards, parsed by TRL's `TrlParser` next to `GRPOConfig`:

    --reward_funcs format haversine hierarchy --tau_start 2000 --tau_end 25 --tau_schedule exponential

Each setting reaches the rewards that declare a keyword-only parameter of the same name (see
`build_reward_funcs`), so a new setting is a new field here plus that parameter on the reward.
"""

from dataclasses import dataclass, field
from typing import Optional

from open_r1.rewards.schedules import SCHEDULES

__all__ = ["RewardArguments"]


@dataclass
class RewardArguments:
    """Which rewards to train with and how they are set."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "haversine"],
        metadata={"help": "rewards by name (see open_r1.rewards.REWARDS): format, haversine, hierarchy, geohash, "
                  "geoguessr, georpiecewise, accuracy, iou, or those of --reward_module"},
    )
    reward_module: Optional[str] = field(
        default=None,
        metadata={"help": "a .py file whose public reward functions fn(prompts, completions, **kwargs) are "
                  "registered under their names, for use in --reward_funcs"},
    )
    tau_start: float = field(
        default=2000.0, metadata={"help": "haversine: distance scale (km) of exp(-d / tau) at the first step"}
    )
    tau_end: float = field(default=25.0, metadata={"help": "haversine: distance scale (km) at the last step"})
    tau_schedule: str = field(
        default="exponential",
        metadata={"help": "haversine: how tau goes from tau_start to tau_end over training",
                  "choices": list(SCHEDULES)},
    )
    format_penalty: float = field(
        default=-0.1, metadata={"help": "format: reward of a completion without one parseable coordinate pair"}
    )
    country_weight: float = field(default=0.5, metadata={"help": "hierarchy: weight of the right country"})
    region_weight: float = field(default=0.3, metadata={"help": "hierarchy: weight of the right region (admin1)"})
    city_weight: float = field(default=0.2, metadata={"help": "hierarchy: weight of the right city"})
    geohash_precision: int = field(
        default=6, metadata={"help": "geohash: number of geohash characters compared (1-12; 6 is about 1 km)"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = self.reward_funcs.split()
        if self.tau_schedule not in SCHEDULES:
            raise ValueError(f"tau_schedule must be one of {SCHEDULES}, got {self.tau_schedule!r}")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise ValueError(f"tau_start and tau_end must be positive km, got {self.tau_start} and {self.tau_end}")
        if min(self.country_weight, self.region_weight, self.city_weight) < 0:
            raise ValueError("hierarchy weights must not be negative")
        if not 1 <= self.geohash_precision <= 12:
            raise ValueError(f"geohash_precision must be in 1..12, got {self.geohash_precision}")
