"""Decode images fast and bounded: JPEGs are decoded at reduced size (Pillow's draft mode) when the
processor would shrink them anyway, so a 12-megapixel photo never costs a full-size decode."""

from __future__ import annotations

import math

from PIL import Image, UnidentifiedImageError

from open_r1.data.jsonl import DataError


def load_image(path: str, max_pixels: int | None = None, where: str = "") -> Image.Image:
    """Open `path` as RGB, no larger than about `max_pixels` (aspect kept); errors name the row and file."""
    try:
        image = Image.open(path)
        if max_pixels and image.format == "JPEG":
            width, height = image.size
            if width * height > 4 * max_pixels:
                # draft picks a 1/2, 1/4 or 1/8 DCT scale that stays at or above the requested size
                scale = math.sqrt(max_pixels / (width * height))
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        image = image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{where}: field 'image': file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{where}: field 'image': cannot decode {path}: {err}") from None
    if max_pixels and image.width * image.height > max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        size = (max(28, round(image.width * scale)), max(28, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image
