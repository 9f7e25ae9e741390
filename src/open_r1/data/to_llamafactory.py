"""Export jsonl + image folders as a LLaMA-Factory multimodal sharegpt dataset, for the SFT warm start.

    python -m open_r1.data.to_llamafactory --data_file_paths a.jsonl:b.jsonl --image_folders imgs_a/:imgs_b/ \
        --out data/llamafactory [--targets answer] [--dataset_name geo_r_sft]

Writes `OUT/<dataset_name>.jsonl` and adds its entry to `OUT/dataset_info.json` (other entries are kept),
so `llamafactory-cli train ... dataset_dir: OUT dataset: <dataset_name>` reads it. Each record is one
human turn (one `<image>` tag per image, then the exact text GRPO prompts with) and one gpt turn (the
Chain-of-Region target, or the row's own answer); image paths are absolute, so the dataset is valid
wherever LLaMA-Factory runs from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from open_r1.configs import ExportArguments
from open_r1.data.dataset import prompt_messages
from open_r1.data.jsonl import load_rows
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


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` entry that maps our columns onto LLaMA-Factory's sharegpt reader."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
    }


def export(
    rows: Sequence[Row],
    out: str | os.PathLike,
    *,
    targets: str = TARGET_CHAIN_OF_REGION,
    dataset_name: str = "geo_r_sft",
    question_template: str | None = None,
) -> Path:
    """Write the dataset and merge its entry into `dataset_info.json`; return the dataset file's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_file = out / f"{dataset_name}.jsonl"
    with open(data_file, "w", encoding="utf-8") as handle:
        for row, target in zip(rows, sft_targets(rows, targets)):
            handle.write(json.dumps(sharegpt_record(row, target, question_template), ensure_ascii=False) + "\n")
    info_path = out / DATASET_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info[dataset_name] = dataset_info_entry(data_file.name)
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data_file


def main(args: ExportArguments) -> Path:
    rows = load_rows(
        args.data_file_paths, args.image_folders, max_rows=args.max_rows,
        allow_absolute_image_paths=args.allow_absolute_image_paths,
    )
    path = export(
        rows, args.out, targets=args.targets, dataset_name=args.dataset_name, question_template=args.question_template
    )
    info = Path(args.out) / DATASET_INFO
    logger.info("wrote %d rows to %s (dataset '%s' in %s)", len(rows), path, args.dataset_name, info)
    return path


if __name__ == "__main__":
    from trl import TrlParser

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    (export_args,) = TrlParser((ExportArguments,)).parse_args_and_config()
    main(export_args)
