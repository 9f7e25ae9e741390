"""`tool_use`: keeps tool calls honest. An episode loses `tool_call_penalty` for each invalid call and each call
beyond `max_tool_calls`, and gets 0 otherwise; what a good call is worth is left to the geographic rewards. It
also logs `tools/calls_per_episode`, `tools/error_rate` and `tools/episodes_with_calls`, which TRL's
`tools/failure_frequency` cannot show, since geo-r's tools answer a bad call with an error text, not an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_r1.answer.episode import read_episode
from open_r1.rewards.batch import batch_of, log_once
from open_r1.rewards.registry import register

__all__ = ["tool_use_reward"]


@register("tool_use")
def tool_use_reward(prompts: Sequence[Any], completions: Sequence[Any], *, tool_call_penalty: float = 0.2,
                    max_tool_calls: int = 3, **kwargs: Any) -> list[float]:
    """Minus `tool_call_penalty` per invalid tool call and per call beyond `max_tool_calls` in the episode.

    Args:
        prompts: The batch's prompts, as TRL passes them to every reward (unused).
        completions: The batch's episodes: assistant turns, the tool turns answering their calls, the final turn.
        tool_call_penalty: What each invalid or excess call costs.
        max_tool_calls: Calls an episode may make before each further one is penalised.
        **kwargs: TRL's `log_metric`, for the `tools/...` step metrics; the other columns are ignored.

    Returns:
        One reward per episode, at most 0.
    """
    batch = batch_of(completions)
    episodes = batch.cache.get("episodes")
    if episodes is None:
        episodes = batch.cache["episodes"] = [read_episode(c) for c in batch.items]
    penalty, cap = float(tool_call_penalty), int(max_tool_calls)
    out = [-penalty * (e.invalid_calls + max(0, e.calls + e.unparsed_calls - cap)) for e in episodes]
    log_metric = kwargs.get("log_metric")
    if log_metric is not None and episodes:
        attempts = sum(e.calls + e.unparsed_calls for e in episodes)
        log_once(batch, log_metric, "tools/calls_per_episode", attempts / len(episodes))
        log_once(batch, log_metric, "tools/error_rate", sum(e.invalid_calls for e in episodes) / attempts if attempts else 0.0)
        log_once(batch, log_metric, "tools/episodes_with_calls", sum(e.calls > 0 for e in episodes) / len(episodes))
    return out
