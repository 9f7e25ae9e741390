"""Script arguments shared by the entry scripts; `TrlParser` parses them next to TRL's own configs."""

from __future__ import annotations

from dataclasses import dataclass, field

from open_r1.rewards.options import RewardArguments


@dataclass
class DataArguments:
    """Where the rows and images are, and how prompts and images are shaped."""

    data_file_paths: str = field(
        default="data/demo/train.jsonl",
        metadata={"help": "jsonl files, separated by ':' (a.jsonl:b.jsonl)"},
    )
    image_folders: str = field(
        default="data/demo/images",
        metadata={"help": "image folders paired by position with --data_file_paths, separated by ':'"},
    )
    question_template: str | None = field(
        default=None,
        metadata={
            "help": "text of the user turn; '{question}' is replaced by the row's question. Default: the geo "
            "template (region-level reasoning, then coordinates) for rows with coordinates, a generic "
            "think/answer template otherwise"
        },
    )
    min_pixels: int = field(default=3136, metadata={"help": "smallest image area given to the vision tower"})
    max_pixels: int = field(default=401408, metadata={"help": "largest image area given to the vision tower"})
    val_split_ratio: float = field(default=0.0, metadata={"help": "share of rows held out for evaluation"})
    max_rows: int | None = field(default=None, metadata={"help": "read at most this many rows (debugging)"})
    streaming: bool = field(
        default=False,
        metadata={"help": "read rows lazily with a shuffle buffer (millions of rows, WebDataset shards); needs "
                  "--max_steps"},
    )


@dataclass
class GRPOScriptArguments(DataArguments, RewardArguments):
    """Arguments of `grpo_jsonl.py` beyond TRL's `GRPOConfig` and `ModelConfig`."""

    freeze_vision_modules: bool = field(default=False, metadata={"help": "do not train the vision tower"})
