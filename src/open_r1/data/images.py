"""Decode images fast and bounded, at the size Qwen2-VL's processor would give them.

JPEGs much larger than the processor's budget are decoded at reduced size (Pillow's draft mode: a 1/2, 1/4
or 1/8 DCT scale), so a 12-megapixel photo never costs a full-size decode. An image reduced here is resized
to `qwen_vl_utils.smart_resize` of its original size (the rule Qwen's processor, vLLM and LLaMA-Factory share),
so SFT, GRPO, evaluation and vLLM see the same image size whichever decoded it. Phone photos are turned upright
from their EXIF orientation, and HEIC photos open when `pillow-heif` is installed.
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

# resize here only when the decoded image is more than this many times over the budget (or was drafted)
OVERSIZE_FACTOR = 2
IMAGE_FACTOR = 28  # Qwen2-VL / Qwen2.5-VL: 14-pixel patches merged 2 x 2, so sides are multiples of 28
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter


def fitted_size(width: int, height: int, max_pixels: int, min_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) that Qwen2-VL's processor resizes a `width` x `height` image to under `max_pixels`:
    qwen_vl_utils' `smart_resize`, each side at least one 28-pixel cell. ValueError past a 200:1 aspect ratio."""
    from qwen_vl_utils import smart_resize

    min_pixels = min(min_pixels or IMAGE_FACTOR * IMAGE_FACTOR, max_pixels)
    h, w = smart_resize(height, width, factor=IMAGE_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    return max(IMAGE_FACTOR, w), max(IMAGE_FACTOR, h)


def load_image(source: str | IO[bytes], max_pixels: int | None = None, where: str = "") -> Image.Image:
    """Open a path or file object as an upright RGB image of at most `OVERSIZE_FACTOR * max_pixels`: one over
    that (or decoded at reduced size) comes at `fitted_size` of its original size.

    Errors are DataError naming the row (`where`) and the file.
    """
    name = source if isinstance(source, str) else getattr(source, "name", None) or str(source)
    drafted = False
    try:
        image = Image.open(source)
        width, height = image.size
        if image.getexif().get(0x0112) in _SWAPS_AXES:
            width, height = height, width  # the upright image's sides
        if max_pixels and image.format == "JPEG" and width * height > 4 * max_pixels:
            scale = math.sqrt(max_pixels / (width * height))
            image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            drafted = True
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        else:
            image.load()
    except FileNotFoundError:
        raise DataError(f"{where}: field 'image': file not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{where}: field 'image': cannot decode {name}: {err}") from None
    if max_pixels and (drafted or image.width * image.height > OVERSIZE_FACTOR * max_pixels):
        try:
            size = fitted_size(width, height, max_pixels)
        except ValueError as err:
            raise DataError(f"{where}: field 'image': {name}: {err} (Qwen2-VL's processor refuses it)") from None
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image
