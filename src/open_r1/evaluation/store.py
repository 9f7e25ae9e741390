"""`predictions.jsonl`, written so an interrupted evaluation resumes instead of starting over.

Records are appended one batch at a time and flushed to disk (fsync) before the next batch starts, so a
killed run loses at most the batch in flight. On restart the file is read back: the ids it holds are
skipped, and a partial last line (the one a kill cut off) is cut from the file before anything is appended.
Damage anywhere else is not a crash leftover, and stops the run with the file and line.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from open_r1.errors import InputError

logger = logging.getLogger(__name__)


class PredictionsError(InputError):
    """A predictions file that cannot be resumed from, located by file and line."""


def read_predictions(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a predictions file (first occurrence of each id) and the byte length of its intact part.

    A last line that is cut off (no newline and not valid JSON) is left out of both; any other invalid line
    raises PredictionsError naming it.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        end = data.find(b"\n", offset)
        complete = end >= 0
        line = data[offset:end if complete else len(data)]
        try:
            record = json.loads(line) if line.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            if not complete:
                logger.warning("%s:%d: dropping a partial last line (%d bytes) left by an interrupted run",
                               path, number, len(line))
                return records, offset
            raise PredictionsError(
                f"{path}:{number}: invalid JSON ({err}); only a cut-off last line is repaired on resume: fix or "
                f"delete this line, or start over with --overwrite"
            ) from None
        if record is not None:
            if not isinstance(record, dict) or "id" not in record:
                raise PredictionsError(f"{path}:{number}: field 'id': missing (not a prediction record)")
            if record["id"] in seen:
                logger.warning("%s:%d: id %r appears twice; keeping the first", path, number, record["id"])
            else:
                seen.add(record["id"])
                records.append(record)
        offset = end + 1 if complete else len(data)
    return records, len(data)


class PredictionStore:
    """Append-only writer over `predictions.jsonl` that first cuts the file back to its intact part."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records, intact = read_predictions(self.path)
        self._handle = None
        if self.path.exists():
            size = self.path.stat().st_size
            with open(self.path, "r+b") as handle:
                if intact < size:
                    handle.truncate(intact)
                if intact:
                    handle.seek(intact - 1)
                    if handle.read(1) != b"\n":  # a complete last record written without its newline
                        handle.write(b"\n")

    @property
    def done_ids(self) -> set[str]:
        return {record["id"] for record in self.records}

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write records and force them to disk before returning."""
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        records = list(records)
        self._handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records.extend(records)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
