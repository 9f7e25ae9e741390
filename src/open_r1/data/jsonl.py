"""Read jsonl files and their image folders into rows that every stage (GRPO, SFT, eval) shares.

A row is the Geo-R / VLM-R1 format::

    {"id": 7, "image": "paris/0001.jpg" or ["n.jpg", "e.jpg", "s.jpg", "w.jpg"],
     "conversations": [{"from": "human", "value": "<image>Where is this?"}, {"from": "gpt", "value": "..."}],
     "lat": 48.85, "lon": 2.35, "country": "FR", "region": "Île-de-France", "city": "Paris"}

`lat`/`lon` are optional (parsed from the gpt answer when absent) and, when given, JSON numbers; names are
optional, and NaN/None/null stand for a missing one (what pandas writes for an empty cell). Image paths are
relative to the image folder and resolve as `os.path.join(image_folder, image)`; a path that climbs out of the
folder (`..`) is refused, and an absolute one too unless `allow_absolute_image_paths`. Every problem is reported
as `file:line: field: what is wrong`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from open_r1.data.rows import IMAGE_TAG, LABEL_FIELDS, DataError, Row
from open_r1.geo.labels import clean_label

KNOWN_FIELDS = frozenset({"id", "image", "images", "conversations", "lat", "lon", *LABEL_FIELDS})


def split_paths(value: str | Sequence[str] | None) -> list[str]:
    """Colon-separated CLI lists (`a.jsonl:b.jsonl`) to a list; a list passes through."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split(":") if part]
    return [str(v) for v in value]


def pair_files_with_folders(
    data_file_paths: str | Sequence[str], image_folders: str | Sequence[str]
) -> list[tuple[str, str]]:
    """Pair each jsonl file with its image folder by position; the counts must match (one folder may serve all)."""
    files = split_paths(data_file_paths)
    folders = split_paths(image_folders)
    if not files:
        raise DataError("--data_file_paths is empty: give one or more jsonl files separated by ':'")
    if len(folders) == 1 and len(files) > 1:
        folders = folders * len(files)
    if len(files) != len(folders):
        raise DataError(
            f"--data_file_paths lists {len(files)} files but --image_folders lists {len(folders)} folders; "
            f"they are paired by position, so give one folder per file (or a single folder for all): "
            f"files={files} folders={folders}"
        )
    for path in files:
        if not Path(path).is_file():
            raise DataError(f"{path}: data file not found")
    for folder in folders:
        if not Path(folder).is_dir():
            raise DataError(f"{folder}: image folder not found")
    return list(zip(files, folders))


def _coordinate(raw: dict, key: str, where: str, limit: float) -> float | None:
    """A coordinate that is a JSON number (None when absent, null or NaN); anything else names the field."""
    value = raw.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None  # absent, null, or the NaN pandas writes for an empty cell
    if isinstance(value, bool):
        raise DataError(
            f"{where}: field '{key}': expected a JSON number, got the boolean {json.dumps(value)} "
            f"(write the coordinate in decimal degrees, e.g. \"{key}\": {48.8566 if key == 'lat' else 2.3522})"
        )
    if isinstance(value, str):
        raise DataError(
            f"{where}: field '{key}': expected a JSON number, got the string {value!r} (write the number without "
            f"quotes, e.g. \"{key}\": {48.8566 if key == 'lat' else 2.3522}, or leave '{key}' out when the row "
            f"has no coordinates)"
        )
    if not isinstance(value, (int, float)):
        raise DataError(
            f"{where}: field '{key}': expected a JSON number, got {type(value).__name__} {json.dumps(value)}"
        )
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        raise DataError(f"{where}: field '{key}': {number} is outside [-{limit}, {limit}]")
    return number


def resolve_image(rel: str, image_folder: str, where: str, allow_absolute: bool = False) -> str:
    """The path of a row's image: `rel` below `image_folder`. A path that climbs out of the folder is refused,
    and so is an absolute one unless `allow_absolute` (then it is used as it is)."""
    if os.path.isabs(rel) or os.path.splitdrive(rel)[0]:
        if not allow_absolute:
            raise DataError(
                f"{where}: field 'image': {rel!r} is an absolute path; image paths are relative to the image "
                f"folder ({image_folder}). Write it relative to that folder, or pass --allow_absolute_image_paths "
                f"to use absolute paths as they are"
            )
        return os.path.normpath(rel)
    parts = os.path.normpath(rel).split(os.sep)
    if parts[0] == os.pardir:
        raise DataError(
            f"{where}: field 'image': {rel!r} climbs out of the image folder ({image_folder}) with '..'; image "
            f"paths must stay inside their folder (give the folder that holds the images as --image_folders)"
        )
    return os.path.join(image_folder, rel)


def _conversation(raw: dict, where: str) -> tuple[str, str]:
    conversations = raw.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise DataError(f"{where}: field 'conversations': expected a non-empty list of {{from, value}} turns")
    human = next((t for t in conversations if isinstance(t, dict) and t.get("from") in ("human", "user")), None)
    gpt = next((t for t in conversations if isinstance(t, dict) and t.get("from") in ("gpt", "assistant")), None)
    if human is None or not isinstance(human.get("value"), str):
        raise DataError(f"{where}: field 'conversations': no human turn with a string 'value'")
    answer = gpt.get("value") if gpt else ""
    return human["value"], answer if isinstance(answer, str) else json.dumps(answer)


def parse_row(
    raw: Any, where: str, image_folder: str, check_images: bool = True, allow_absolute_image_paths: bool = False
) -> Row:
    """Validate one decoded jsonl object and resolve its images; raise DataError naming `where` and the field."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    images = raw.get("image", raw.get("images"))
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
        raise DataError(f"{where}: field 'image': expected a relative path or a non-empty list of paths")
    paths = [resolve_image(rel, image_folder, where, allow_absolute_image_paths) for rel in images]
    if check_images:
        for rel, path in zip(images, paths):
            if not os.path.isfile(path):
                raise DataError(f"{where}: field 'image': {rel!r} not found at {path}")

    human, answer = _conversation(raw, where)
    n_tags = human.count(IMAGE_TAG)
    if n_tags not in (0, len(images)):
        raise DataError(
            f"{where}: field 'conversations': the human turn has {n_tags} <image> tags but 'image' lists "
            f"{len(images)} images"
        )
    question = human.replace(IMAGE_TAG, "").strip()

    lat = _coordinate(raw, "lat", where, 90.0)
    lon = _coordinate(raw, "lon", where, 180.0)
    if (lat is None) != (lon is None):
        raise DataError(f"{where}: field '{'lon' if lat is not None else 'lat'}': missing while the other is given")
    if lat is None and answer:
        lat, lon = _coordinates_from_answer(answer)

    labels = {key: clean_label(raw.get(key)) for key in LABEL_FIELDS}  # NaN/None/"" -> missing, never "nan"
    extra = {k: v for k, v in raw.items() if k not in KNOWN_FIELDS}
    row_id = clean_label(raw.get("id"))
    return Row(
        id=row_id if row_id is not None else where,
        image_paths=paths,
        question=question,
        solution=answer,
        lat=lat,
        lon=lon,
        source=where,
        extra=extra,
        **labels,
    )


def _coordinates_from_answer(answer: str) -> tuple[float | None, float | None]:
    """Labels for rows that carry coordinates only in their gpt answer (Geo-R's original files)."""
    from open_r1.answer import parse_answer

    parsed = parse_answer(answer)
    return (parsed.lat, parsed.lon) if parsed else (None, None)


def iter_jsonl(path: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded object) for each non-blank line; bad JSON names the file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: invalid JSON: {err.msg} (column {err.colno})") from None


def load_rows(
    data_file_paths: str | Sequence[str],
    image_folders: str | Sequence[str],
    *,
    check_images: bool = True,
    max_rows: int | None = None,
    allow_absolute_image_paths: bool = False,
) -> list[Row]:
    """Load and validate every row of every file; stop at the first problem with a located error."""
    rows: list[Row] = []
    for path, folder in pair_files_with_folders(data_file_paths, image_folders):
        count = 0
        for number, raw in iter_jsonl(path):
            rows.append(parse_row(raw, f"{path}:{number}", folder, check_images, allow_absolute_image_paths))
            count += 1
            if max_rows is not None and len(rows) >= max_rows:
                return rows
        if count == 0:
            raise DataError(f"{path}: no rows (the file is empty)")
    return rows
