"""Check a dataset before training on it, and report every problem at once rather than the first.

    python -m open_r1.data.validate --data_file_paths a.jsonl:b.jsonl --image_folders imgs_a:imgs_b

Rows are checked with the loader's own `parse_row`, so validation and training agree on what is wrong; images
must exist (`--decode_images` decodes them) and ids be unique. Problems print as `file:line: field: what is
wrong`, and the exit code is non-zero when there is any. Training calls `validate()` at start-up.
"""

from __future__ import annotations

import argparse
import array
import hashlib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from open_r1.cli import fail, run_main
from open_r1.data.images import load_image
from open_r1.data.jsonl import pair_files_with_folders, parse_row, resolve_image
from open_r1.data.rows import LABEL_FIELDS, DataError
from open_r1.errors import InputError
from open_r1.geo.labels import is_missing

KINDS = {
    "json": "lines that are not valid JSON",
    "format": "rows with a malformed field",
    "coordinates": "rows with bad or out-of-range coordinates",
    "image_tags": "rows whose <image> tags do not match their images",
    "missing_image": "missing images",
    "unreadable_image": "unreadable images",
    "duplicate_id": "duplicate ids",
}
_FIELD_RE = re.compile(r": field '([^']+)'")
DEFAULT_MAX_PIXELS = 401408


@dataclass
class Report:
    """What validation found: counts, the first problems of each kind, label coverage and countries."""

    files: list[str]
    rows: int = 0
    valid_rows: int = 0
    geo_rows: int = 0
    images: int = 0
    problems: Counter = field(default_factory=Counter)  # kind -> count
    messages: dict[str, list[str]] = field(default_factory=dict)  # kind -> first messages
    labels: Counter = field(default_factory=Counter)  # country/region/city -> rows that have it
    countries: Counter = field(default_factory=Counter)
    placeholders: int = 0  # labels written as NaN/None/null: missing, not names
    first_placeholder: str = ""  # "file:line: field 'x'" of the first one
    max_messages: int = 20

    def add(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        shown = self.messages.setdefault(kind, [])
        if len(shown) < self.max_messages:
            shown.append(message)

    @property
    def errors(self) -> int:
        return sum(self.problems.values())

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.rows > 0

    def format(self, top_countries: int = 20) -> str:
        lines = [f"{self.rows:,} rows in {len(self.files)} file(s), {self.images:,} images referenced"]
        if self.errors:
            lines.append(f"{self.errors:,} problems ({self.valid_rows:,} of {self.rows:,} rows are clean):")
            for kind, count in self.problems.most_common():
                lines.append(f"  {count:,} {KINDS[kind]}")
                lines.extend(f"    {message}" for message in self.messages.get(kind, []))
                if count > len(self.messages.get(kind, [])):
                    lines.append(f"    ... and {count - len(self.messages[kind]):,} more")
        else:
            lines.append("no problems found" if self.rows else "no rows")
        if self.valid_rows:
            coverage = [f"coordinates {self.geo_rows / self.valid_rows:.1%}"]
            coverage += [f"{name} {self.labels[name] / self.valid_rows:.1%}" for name in LABEL_FIELDS]
            lines.append("label coverage: " + ", ".join(coverage))
        if self.placeholders:
            lines.append(
                f"{self.placeholders:,} labels are NaN/None/null placeholders and count as missing, not as place "
                f"names (first: {self.first_placeholder})"
            )
        if self.countries and top_countries > 0:
            shown = self.countries.most_common(top_countries)
            lines.append(f"countries: {len(self.countries)} distinct; most common:")
            width = max(len(name) for name, _ in shown)
            lines.extend(f"  {name:<{width}} {count:>9,}  {count / self.valid_rows:6.1%}" for name, count in shown)
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Stop (training, say) with the whole report when anything is wrong."""
        if not self.ok:
            raise DataError(self.format(top_countries=0))


def _kind(message: str) -> str:
    """Which check a `parse_row` error comes from, read off the field its message names."""
    match = _FIELD_RE.search(message)
    name = match.group(1) if match else ""
    if name in ("lat", "lon"):
        return "coordinates"
    if name == "conversations" and "<image> tags" in message:
        return "image_tags"
    return "format"


def _count_placeholders(raw: object, where: str, report: Report) -> None:
    """Labels present but written as a missing value (pandas' NaN, None, null): counted, read as missing."""
    if not isinstance(raw, dict):
        return
    for name in LABEL_FIELDS:
        value = raw.get(name)
        if value is not None and value != "" and is_missing(value):
            report.placeholders += 1
            if not report.first_placeholder:
                report.first_placeholder = f"{where}: field '{name}': {json.dumps(value)}"


def _resolvable(refs: list[str], folder: str, where: str, allow_absolute: bool) -> tuple[list[str], list[str]]:
    """(refs, paths) of the image references that resolve inside the image folder (others are a format error)."""
    kept, paths = [], []
    for ref in refs:
        try:
            paths.append(resolve_image(ref, folder, where, allow_absolute))
        except DataError:
            continue
        kept.append(ref)
    return kept, paths


def _image_refs(raw: object) -> list[str]:
    """A row's image paths when its image field is well-formed (also for rows that fail other checks)."""
    images = raw.get("image", raw.get("images")) if isinstance(raw, dict) else None
    images = [images] if isinstance(images, str) else images
    return images if isinstance(images, list) and images and all(isinstance(i, str) and i for i in images) else []


def _check_images(
    paths: list[str], rels: list[str], where: str, report: Report, decode: bool, max_pixels: int | None
) -> bool:
    """Count and check a row's images; False when any is missing or unreadable."""
    clean = True
    for rel, path in zip(rels, paths):
        report.images += 1
        try:
            size = os.stat(path).st_size
        except OSError:
            report.add("missing_image", f"{where}: field 'image': {rel!r} not found at {path}")
            clean = False
            continue
        if size == 0:
            report.add("unreadable_image", f"{where}: field 'image': {rel!r} is an empty file")
            clean = False
        elif decode:
            try:
                load_image(path, max_pixels, where=where)
            except DataError as err:
                report.add("unreadable_image", str(err))
                clean = False
    return clean


def _id_key(value: object) -> int:
    return int.from_bytes(hashlib.blake2b(str(value).encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def _report_duplicates(keys: array.array, places: array.array, files: list[str], report: Report) -> None:
    """Every row whose id an earlier row already has, named with the first row that has it."""
    if len(keys) < 2:
        return
    hashed = np.frombuffer(keys, dtype=np.int64)
    located = np.frombuffer(places, dtype=np.int64)
    order = np.argsort(hashed, kind="stable")
    ordered = hashed[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    if not len(repeats):
        return
    first_of_run = np.maximum.accumulate(np.where(np.r_[True, ordered[1:] != ordered[:-1]], np.arange(len(order)), 0))

    def where(place: int) -> str:
        return f"{files[place >> 32]}:{place & 0xFFFFFFFF}"

    found = sorted((int(located[order[i]]), int(located[order[first_of_run[i]]])) for i in repeats)
    for place, first in found:
        report.add("duplicate_id", f"{where(place)}: field 'id': the same id as {where(first)}")


def validate(
    data_file_paths: str | Sequence[str],
    image_folders: str | Sequence[str],
    decode_images: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_messages: int = 20,
    allow_absolute_image_paths: bool = False,
) -> Report:
    """Check every row of every file and return the report; only unusable arguments raise (DataError).

    Args:
        data_file_paths: The jsonl files, as a list or one string joined with ':'.
        image_folders: The image folder of each file, in the same form; one folder may serve all.
        decode_images: Also decode every image (slow), not only check that it exists.
        max_pixels: The size bound images are decoded at, as in training.
        max_messages: How many messages of each kind of problem the report keeps.
        allow_absolute_image_paths: Accept rows whose image paths are absolute, as training does with this flag.

    Returns:
        The report: counts, the first problems of each kind, label coverage and countries.
    """
    pairs = pair_files_with_folders(data_file_paths, image_folders)
    report = Report(files=[path for path, _ in pairs], max_messages=max_messages)
    id_keys, id_places = array.array("q"), array.array("q")
    for file_index, (path, folder) in enumerate(pairs):
        rows_before = report.rows
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                report.rows += 1
                where = f"{path}:{number}"
                try:
                    raw = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError as err:
                    report.add("json", f"{where}: not UTF-8 text: {err.reason} at byte {err.start}")
                    continue
                except json.JSONDecodeError as err:
                    report.add("json", f"{where}: invalid JSON: {err.msg} (column {err.colno})")
                    continue
                if isinstance(raw, dict) and raw.get("id") is not None:
                    id_keys.append(_id_key(raw["id"]))
                    id_places.append(file_index << 32 | number)
                _count_placeholders(raw, where, report)
                try:
                    row = parse_row(raw, where, folder, False, allow_absolute_image_paths)
                except DataError as err:
                    report.add(_kind(str(err)), str(err))
                    refs, paths = _resolvable(_image_refs(raw), folder, where, allow_absolute_image_paths)
                    _check_images(paths, refs, where, report, decode_images, max_pixels)
                    continue
                rels = _image_refs(raw)
                if not _check_images(row.image_paths, rels, where, report, decode_images, max_pixels):
                    continue
                report.valid_rows += 1
                report.geo_rows += row.lat is not None
                for name in LABEL_FIELDS:
                    report.labels[name] += getattr(row, name) is not None
                if row.country:
                    report.countries[row.country] += 1
        if report.rows == rows_before:
            report.add("format", f"{path}: no rows (the file is empty)")
    _report_duplicates(id_keys, id_places, report.files, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m open_r1.data.validate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data_file_paths", required=True, help="jsonl files separated by ':'")
    parser.add_argument("--image_folders", required=True, help="image folders paired by position, separated by ':'")
    parser.add_argument("--decode_images", action="store_true", help="also decode every image (slower)")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decode size bound, as in training")
    parser.add_argument(
        "--allow_absolute_image_paths", action="store_true",
        help="accept absolute image paths in the rows (by default every image path is relative to its folder)",
    )
    parser.add_argument("--show", type=int, default=20, help="problems listed per kind (all are counted)")
    parser.add_argument("--top_countries", type=int, default=20, help="countries shown in the histogram")
    args = parser.parse_args(argv)
    try:
        report = validate(
            args.data_file_paths, args.image_folders, args.decode_images, args.max_pixels, args.show,
            allow_absolute_image_paths=args.allow_absolute_image_paths,
        )
    except InputError as err:
        return fail(err)
    print(report.format(args.top_countries))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
