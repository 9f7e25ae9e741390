"""What every stage passes around: a validated `Row` and the `DataError` that names a bad input's file, line
and field (an `InputError`: an entry point ends on it with one `error:` line). A leaf (bar the errors), so any
module can raise or hold these without importing the readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from open_r1.errors import InputError

IMAGE_TAG = "<image>"
LABEL_FIELDS = ("country", "region", "city")


class DataError(InputError):
    """A problem with the input data, located by file, line and field."""


@dataclass
class Row:
    """One training/evaluation example after validation, with absolute image paths."""

    id: str
    image_paths: list[str]
    question: str  # the human turn with <image> tags removed
    solution: str  # the gpt answer ("" when the row has none)
    lat: float | None = None
    lon: float | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    source: str = ""  # "file:line", for error messages downstream
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_paths": self.image_paths,
            "question": self.question,
            "solution": self.solution,
            "lat": self.lat,
            "lon": self.lon,
            "country": self.country,
            "region": self.region,
            "city": self.city,
            "source": self.source,
        }
