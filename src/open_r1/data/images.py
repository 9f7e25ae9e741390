"""Decode images fast and bounded.

JPEGs much larger than the processor's budget are decoded at reduced size (Pillow's draft mode: a 1/2, 1/4
or 1/8 DCT scale), so a 12-megapixel photo never costs a full-size decode; the processor then resizes onto
its own 28-pixel grid, so no second resize happens here unless an image is far over budget. Phone photos
are turned upright from their EXIF orientation, and HEIC photos open when `pillow-heif` is installed.
"""

from __future__ import annotations

import math
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from open_r1.data.rows import DataError

# The one list of image file types geo-r reads: Pillow's own, plus HEIC/HEIF when pillow-heif is installed.
PILLOW_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
HEIF_SUFFIXES = (".heic", ".heif")
IMAGE_SUFFIXES = PILLOW_SUFFIXES + HEIF_SUFFIXES


def heif_available() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow when the package is installed (iPhone photos)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


heif_available()

# resize here only when the decoded image is more than this many times over the budget
OVERSIZE_FACTOR = 2


def load_image(source: str | IO[bytes], max_pixels: int | None = None, where: str = "") -> Image.Image:
    """Open a path or file object as an upright RGB image of at most about `OVERSIZE_FACTOR * max_pixels`.

    Errors are DataError naming the row (`where`) and the file.
    """
    name = source if isinstance(source, str) else getattr(source, "name", None) or str(source)
    try:
        image = Image.open(source)
        if max_pixels and image.format == "JPEG":
            width, height = image.size
            if width * height > 4 * max_pixels:
                scale = math.sqrt(max_pixels / (width * height))
                image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        else:
            image.load()
    except FileNotFoundError:
        raise DataError(f"{where}: field 'image': file not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{where}: field 'image': cannot decode {name}: {err}") from None
    if max_pixels and image.width * image.height > OVERSIZE_FACTOR * max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        size = (max(28, round(image.width * scale)), max(28, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image
