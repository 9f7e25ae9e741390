"""The competition file: one line per image with its coordinates, read from the prediction records.

    id,lat,lon                                   one guess per image
    id,lat,lon,lat_1,lon_1,...,lat_k,lon_k       k guesses: lat/lon is the top-ranked guess, then all k in rank order

An unparseable guess leaves its two cells empty rather than inventing a place; fill them as the
competition requires.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _cells(lat: float | None, lon: float | None) -> list[str]:
    return ["", ""] if lat is None or lon is None else [f"{lat:.6f}", f"{lon:.6f}"]


def write_submission(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the CSV (in record order) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = max((len(r.get("guesses") or ()) for r in records), default=0)
    header = ["id", "lat", "lon"]
    if k > 1:
        header += [f"{axis}_{i}" for i in range(1, k + 1) for axis in ("lat", "lon")]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record in records:
            row = [record["id"], *_cells(record["pred_lat"], record["pred_lon"])]
            if k > 1:
                guesses = list(record.get("guesses") or ())
                for i in range(k):
                    row += _cells(guesses[i]["lat"], guesses[i]["lon"]) if i < len(guesses) else ["", ""]
            writer.writerow(row)
    return path
