"""Turn validated rows into the dataset TRL's trainers read: a conversational `prompt`, the row's `images`
(decoded lazily, on access, so memory does not hold every picture) and the label columns that reward
functions receive as keyword arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from open_r1.answer import build_question
from open_r1.data.images import load_image
from open_r1.data.rows import Row
from open_r1.errors import ArgumentError


def prompt_messages(row: Row, question_template: str | None = None) -> list[dict[str, Any]]:
    """The user turn as TRL expects it; TRL inserts one image placeholder per image before the text."""
    text = build_question(row.question, is_geo=row.lat is not None, template=question_template)
    return [{"role": "user", "content": text}]


def rows_to_dataset(rows: Sequence[Row], question_template: str | None = None) -> Dataset:
    """An HF dataset with one column per field; images stay paths until `with_images` decodes them."""
    records = []
    for row in rows:
        record = row.to_dict()
        record["prompt"] = prompt_messages(row, question_template)
        records.append(record)
    return Dataset.from_list(records)


class ImageDecoder:
    """A picklable `with_transform` function that adds decoded `images` to each accessed batch."""

    def __init__(self, max_pixels: int | None):
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        batch["images"] = [
            [load_image(path, self.max_pixels, where=source) for path in paths]
            for paths, source in zip(batch["image_paths"], batch["source"])
        ]
        return batch


def with_images(dataset: Dataset, max_pixels: int | None) -> Dataset:
    """Decode images on access (bounded by `max_pixels`), keeping every other column as it is."""
    return dataset.with_transform(ImageDecoder(max_pixels))


def split_for_validation(dataset: Dataset, ratio: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out `ratio` of the rows (at least one) for evaluation; ratio 0 keeps everything for training."""
    if not ratio:
        return dataset, None
    if not 0 < ratio < 1:
        raise ArgumentError(f"--val_split_ratio must be in (0, 1), got {ratio}")
    parts = dataset.train_test_split(test_size=max(1, round(len(dataset) * ratio)), seed=seed)
    return parts["train"], parts["test"]
