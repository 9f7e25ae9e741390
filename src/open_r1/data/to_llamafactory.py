"""Export jsonl + image folders as a LLaMA-Factory multimodal sharegpt dataset, for the SFT warm start.

    python -m open_r1.data.to_llamafactory --data_file_paths a.jsonl --image_folders imgs/ --out data/llamafactory
    python -m open_r1.data.to_llamafactory --dataset_name data/my_hub_set --out data/llamafactory

Writes `OUT/<export_name>.jsonl` and its entry in `OUT/dataset_info.json` (other entries kept). Each record is
the exact text GRPO prompts with and the Chain-of-Region target (or the row's answer); image paths are absolute,
so the dataset is valid wherever LLaMA-Factory runs from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from open_r1.cli import parse, run_main
from open_r1.configs import ExportArguments
from open_r1.data.dataset import prompt_messages
from open_r1.data.hub import read_rows
from open_r1.data.rows import IMAGE_TAG, Row
from open_r1.data.sft_targets import TARGET_CHAIN_OF_REGION, sft_targets

logger = logging.getLogger(__name__)

DATASET_INFO = "dataset_info.json"


def sharegpt_record(row: Row, target: str, question_template: str | None = None) -> dict[str, Any]:
    """One LLaMA-Factory sharegpt record: `<image>` tags + GRPO's prompt text, the target, absolute images."""
    text = prompt_messages(row, question_template)[0]["content"]
    return {
        "id": row.id,
        "conversations": [
            {"from": "human", "value": IMAGE_TAG * len(row.image_paths) + text},
            {"from": "gpt", "value": target},
        ],
        "images": [os.path.abspath(path) for path in row.image_paths],
    }


def _tool_result(content: Any, row: Row, turn: int, image_dir: Path) -> tuple[str, list[str]]:
    """An observation's text, an `<image>` tag where the tool returned an image (saved under `image_dir`)."""
    if not isinstance(content, list):
        return str(content), []
    text, images = "", []
    for part in content:
        if part.get("type") == "image":
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(row.id))
            path = image_dir / f"{safe}-{turn}-{len(images)}.png"
            part["image"].save(path)
            images.append(str(path.resolve()))
            text += IMAGE_TAG
        elif part.get("type", "text") == "text":
            text += part.get("text", "")
    return text, images


def episode_record(
    row: Row, messages: list[dict[str, Any]], tools: list[dict[str, Any]], image_dir: Path,
    question_template: str | None = None,
) -> dict[str, Any]:
    """One LLaMA-Factory sharegpt record of a tool episode: `function_call` turns (the reasoning, then the call in
    Qwen2.5's `<tool_call>` tags, which LLaMA-Factory's Qwen tool format reads back), `observation` turns (a tool's
    image as an `<image>` tag, its file in `images` after the photos), and the `tools` column, so the prompt
    lists the tools exactly as GRPO's does."""
    text = prompt_messages(row, question_template)[0]["content"]
    conversations = [{"from": "human", "value": IMAGE_TAG * len(row.image_paths) + text}]
    images = [os.path.abspath(path) for path in row.image_paths]
    for turn, message in enumerate(messages):
        if message["role"] == "tool":
            value, saved = _tool_result(message["content"], row, turn, image_dir)
            conversations.append({"from": "observation", "value": value})
            images += saved
        elif message.get("tool_calls"):
            calls = "".join(
                "\n<tool_call>\n" + json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                                ensure_ascii=False) + "\n</tool_call>"
                for c in message["tool_calls"]
            )
            conversations.append({"from": "function_call", "value": (message.get("content") or "") + calls})
        else:
            conversations.append({"from": "gpt", "value": message["content"]})
    return {"id": row.id, "conversations": conversations, "images": images, "tools": json.dumps(tools, ensure_ascii=False)}


def dataset_info_entry(file_name: str, tools: bool = False) -> dict[str, Any]:
    """The `dataset_info.json` entry that maps our columns onto LLaMA-Factory's sharegpt reader."""
    columns = {"messages": "conversations", "images": "images"}
    if tools:
        columns["tools"] = "tools"
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns}


def export(
    rows: Sequence[Row],
    out: str | os.PathLike,
    *,
    targets: str = TARGET_CHAIN_OF_REGION,
    dataset_name: str = "geo_r_sft",
    question_template: str | None = None,
    episodes: Iterable[list[dict[str, Any]]] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the dataset and merge its entry into `dataset_info.json`; return the dataset file's path.

    `episodes` (one list of assistant/tool messages per row, tool turns filled, in row order) and `tools`
    (their JSON schemas) export tool-using targets; `open_r1.tools.export` builds them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_file = out / f"{dataset_name}.jsonl"
    image_dir = out / f"{dataset_name}_tool_images"
    with open(data_file, "w", encoding="utf-8") as handle:
        if episodes is None:
            records = (sharegpt_record(row, target, question_template) for row, target in zip(rows, sft_targets(rows, targets)))
        else:
            image_dir.mkdir(exist_ok=True)
            records = (episode_record(row, messages, tools or [], image_dir, question_template)
                       for row, messages in zip(rows, episodes, strict=True))
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    info_path = out / DATASET_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info[dataset_name] = dataset_info_entry(data_file.name, tools=episodes is not None)
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data_file


def main(args: ExportArguments, episodes: Any = None, tools: list[dict[str, Any]] | None = None) -> Path:
    """Export as `args` say; `episodes(rows)` (given by `open_r1.tools.export`) makes the tool-using targets."""
    rows = read_rows(args)
    path = export(
        rows, args.out, targets=args.targets, dataset_name=args.export_name, question_template=args.question_template,
        episodes=episodes(rows) if episodes is not None else None, tools=tools,
    )
    info = Path(args.out) / DATASET_INFO
    logger.info("wrote %d rows to %s (dataset '%s' in %s)", len(rows), path, args.export_name, info)
    return path


if __name__ == "__main__":
    from trl import TrlParser

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(lambda: main(*parse(TrlParser((ExportArguments,)))))
