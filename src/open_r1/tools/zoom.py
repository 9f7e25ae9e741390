"""`zoom`: the model crops a region of the photo and sees it again at full resolution, for signs, plates and road
markings too small to read at the default image size.

A tool needs its episode's photo, which a plain function cannot know, so `PhotoTools` is a TRL environment
(`GRPOTrainer(environment_factory=...)`): TRL calls its `reset(**row)` before each rollout and exposes its public
methods as tools. `ToolSet.bind(row)` does the same in evaluation and `predict`, so training and inference call the
very same method.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any

from PIL import Image

from open_r1.answer.episode import TOOL_ERROR_PREFIX
from open_r1.data.images import load_image

__all__ = ["MIN_CROP_PX", "SOURCE_FACTOR", "PhotoTools", "crop_region"]

MIN_CROP_PX = 8  # a smaller box holds nothing to read
MIN_SIDE_PX = 28  # the vision tower's patch grid (14 px patches merged 2x2)
# The original is decoded at up to this many times the tool's pixel budget: a zoom on a quarter of each side
# still shows full detail, and a 48-megapixel photo is never decoded whole (JPEG draft mode).
SOURCE_FACTOR = 16


def crop_region(image: Image.Image, x1: float, y1: float, x2: float, y2: float, max_pixels: int) -> Image.Image | str:
    """The box (x1, y1)-(x2, y2), cut from `image` and scaled to at most `max_pixels` (never up beyond the vision
    tower's smallest grid).

    Args:
        image: The episode's photo.
        x1, y1, x2, y2: The box's corners, in fractions 0-1 of the width and height.
        max_pixels: The size bound of the crop.

    Returns:
        The crop, or for a bad box a short error text for the model to read (never an exception).
    """
    try:
        box = [float(v) for v in (x1, y1, x2, y2)]
    except (TypeError, ValueError):
        return f"{TOOL_ERROR_PREFIX} x1, y1, x2, y2 must be numbers between 0 and 1"
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in box):
        return f"{TOOL_ERROR_PREFIX} x1, y1, x2, y2 must be fractions of the image between 0 and 1, got {box}"
    left, top, right, bottom = box[0] * image.width, box[1] * image.height, box[2] * image.width, box[3] * image.height
    if right - left < MIN_CROP_PX or bottom - top < MIN_CROP_PX:
        return f"{TOOL_ERROR_PREFIX} the box must have x2 > x1 and y2 > y1 and cover at least {MIN_CROP_PX} pixels each way"
    crop = image.crop((round(left), round(top), round(right), round(bottom)))
    scale = min(1.0, math.sqrt(max_pixels / (crop.width * crop.height)))
    scale = max(scale, MIN_SIDE_PX / min(crop.width, crop.height))  # the processor needs 28 px a side
    if scale != 1.0:
        size = (max(MIN_SIDE_PX, round(crop.width * scale)), max(MIN_SIDE_PX, round(crop.height * scale)))
        crop = crop.resize(size, Image.Resampling.BICUBIC)
    return crop


@lru_cache(maxsize=4)
def _original(path: str, budget: int) -> Image.Image:
    """The photo as zooms see it; the G rollouts of one prompt share one decode."""
    return load_image(path, budget, where=path)


class PhotoTools:
    """The tools that need the episode's photo, as a TRL environment (see the module's docstring): one object
    per rollout, `reset` with the rollout's row, then `zoom` calls."""

    def __init__(self, max_pixels: int = 401408):
        self.max_pixels = max_pixels
        self.image_paths: list[str] = []
        self.decoded: list[Any] = []

    def reset(self, **row: Any) -> None:
        """Bind to the row of the coming rollout (its `image_paths`, and its decoded `images` for photos that
        are no plain file, such as WebDataset members); returns None, so the prompt is unchanged."""
        paths = row.get("image_paths") or []
        self.image_paths = [paths] if isinstance(paths, str) else list(paths)
        images = row.get("images") or []
        self.decoded = [im if isinstance(im, Image.Image) else None for im in images]

    def zoom(self, x1: float, y1: float, x2: float, y2: float, view: int = 0) -> list | str:
        """Zoom into a region of the photo to read small details (signs, plates, road markings) at full
        resolution.

        Args:
            x1: left edge of the region, as a fraction of the image width (0 = left, 1 = right)
            y1: top edge of the region, as a fraction of the image height (0 = top, 1 = bottom)
            x2: right edge of the region, as a fraction of the image width
            y2: bottom edge of the region, as a fraction of the image height
            view: which photo of the place to zoom into, counting from 0 (for several views)

        Returns:
            The enlarged region as an image, or a short error text.
        """
        try:
            index = int(view)
        except (TypeError, ValueError):
            return f"{TOOL_ERROR_PREFIX} view must be a whole number"
        if not self.image_paths:
            return f"{TOOL_ERROR_PREFIX} there is no photo to zoom into"
        if not 0 <= index < len(self.image_paths):
            return f"{TOOL_ERROR_PREFIX} view must be between 0 and {len(self.image_paths) - 1}"
        path = self.image_paths[index]
        try:
            if not os.path.isfile(path) and index < len(self.decoded) and self.decoded[index] is not None:
                image = self.decoded[index]  # the training-size decode: no finer detail to be had here
            else:
                image = _original(path, SOURCE_FACTOR * self.max_pixels)
        except ValueError as err:  # DataError: the file went missing since the start-up check
            return f"{TOOL_ERROR_PREFIX} the photo cannot be read ({err})"
        crop = crop_region(image, x1, y1, x2, y2, self.max_pixels)
        if isinstance(crop, str):
            return crop
        return [
            {"type": "image", "image": crop},
            {"type": "text", "text": f"view {index}, region ({float(x1):.2f}, {float(y1):.2f})-"
                                     f"({float(x2):.2f}, {float(y2):.2f}), {crop.width}x{crop.height} px"},
        ]
