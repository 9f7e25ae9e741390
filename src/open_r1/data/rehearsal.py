"""Photo sets at a real camera's size, made from the shipped demo rows, for rehearsing the GPU recipes.

The demo's photos are small; a rehearsal needs what a user's data costs: 1024x768 JPEGs (494 image tokens at the
recipes' max_pixels) and 4-view rows (about 2,069 prompt tokens), in one file. Rows alternate 1-photo and 4-view,
so with `--shuffle_dataset false` every micro-batch of two or more prompts holds both kinds.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def _demo_rows(jsonl: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    single = [r for r in rows if isinstance(r["image"], str)]
    views = [r for r in rows if isinstance(r["image"], list)]
    return single, views


def write_rehearsal_set(
    out: str | Path,
    demo_jsonl: str | Path,
    demo_images: str | Path,
    *,
    single: int = 4,
    views: int = 4,
    size: tuple[int, int] = (1024, 768),
    name: str = "train",
) -> tuple[Path, Path]:
    """Write `out/<name>.jsonl` and `out/images/` from the first `single` 1-photo and `views` 4-view demo rows,
    each photo resized to `size` (a JPEG at quality 90); return (jsonl, images folder).

    The rows keep their coordinates and labels, alternating 1-photo and 4-view while both last."""
    out, demo_images = Path(out), Path(demo_images)
    one, four = _demo_rows(Path(demo_jsonl))
    if len(one) < single or len(four) < views:
        raise ValueError(f"{demo_jsonl} has {len(one)} 1-photo and {len(four)} multi-view rows; asked {single}, {views}")
    one, four = one[:single], four[:views]
    ordered = [row for pair in zip(one, four) for row in pair] + one[len(four):] + four[len(one):]
    images = out / "images"
    for row in ordered:
        for rel in [row["image"]] if isinstance(row["image"], str) else row["image"]:
            target = images / rel
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(demo_images / rel) as photo:
                photo.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target, quality=90)
    jsonl = out / f"{name}.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in ordered), encoding="utf-8")
    return jsonl, images
