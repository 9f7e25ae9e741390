"""Export tool-using SFT targets for LLaMA-Factory: the rows' episodes (`data.sft_targets.sft_episodes`) with
their tool turns run here, on the rows' own photos, so a crop in the dataset is what `zoom` returns in GRPO.

    python -m open_r1.tools.export --tools zoom lookup --data_file_paths a.jsonl --image_folders imgs/ \\
        --out data/llamafactory [--export_name geo_r_sft_tools]

Arguments are `open_r1.data.to_llamafactory`'s and `--tools`; the zoom crops are written next to the dataset file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from transformers.utils import get_json_schema

from open_r1.cli import parse, run_main
from open_r1.configs import ToolExportArguments
from open_r1.data import to_llamafactory
from open_r1.data.rows import Row
from open_r1.data.sft_targets import sft_episodes
from open_r1.errors import ArgumentError
from open_r1.tools.episodes import run_tool_turns
from open_r1.tools.registry import build_toolset

logger = logging.getLogger(__name__)


def main(args: ToolExportArguments, max_pixels: int = 401408) -> Path:
    """Export `args.tools` episodes (zoom crops within `max_pixels`, the training default)."""
    if not args.tools:
        raise ArgumentError("--tools is empty: without tools, use python -m open_r1.data.to_llamafactory")
    toolset = build_toolset(args.tools, max_pixels=max_pixels)

    def episodes(rows: Sequence[Row]) -> Iterator[list[dict[str, Any]]]:
        for row, messages in zip(rows, sft_episodes(rows, toolset.names, args.targets)):
            yield run_tool_turns(messages, toolset.bind({"image_paths": row.image_paths}))

    return to_llamafactory.main(args, episodes=episodes, tools=[get_json_schema(t) for t in toolset.schemas()])


if __name__ == "__main__":
    from trl import TrlParser

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(lambda: main(*parse(TrlParser((ToolExportArguments,)))))
