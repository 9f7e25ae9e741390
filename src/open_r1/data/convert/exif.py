"""`exif`: a folder of your own photos -> rows from their GPS EXIF tags.

Coordinates are read with Pillow's EXIF API (degrees/minutes/seconds plus the N/S and E/W references).
JPEG, PNG, WebP and TIFF are read by Pillow itself; HEIC/HEIF (iPhone photos) need the optional
`pillow-heif` package, and without it they are skipped and counted, like photos without a GPS fix.
Rows point at the photos where they are: the photo folder is the image folder.

    python -m open_r1.data.convert exif --photos ~/Pictures/trip --out data/trip.jsonl
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterator

from PIL import ExifTags, Image, UnidentifiedImageError

from open_r1.data.convert.writer import Record, Skip
from open_r1.data.images import HEIF_SUFFIXES, PILLOW_SUFFIXES, heif_available
from open_r1.data.rows import DataError

DESCRIPTION = "a folder of photos with GPS EXIF tags (JPEG; HEIC with pillow-heif installed)"


def _degrees(value, ref) -> float:
    """Decimal degrees from EXIF's (degrees, minutes, seconds) rationals and a hemisphere reference."""
    parts = [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
    degrees = sum(part / 60**i for i, part in enumerate(parts[:3]))
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", errors="ignore")
    return -degrees if str(ref or "").strip("\x00 ").upper() in ("S", "W") else degrees


def gps_coordinates(path: str) -> tuple[float, float] | None:
    """(lat, lon) from a photo's GPS EXIF, or None when it has none; unreadable files raise DataError."""
    try:
        with Image.open(path) as image:
            gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot read the photo: {err}") from None
    if ExifTags.GPS.GPSLatitude not in gps or ExifTags.GPS.GPSLongitude not in gps:
        return None
    try:
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef))
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef))
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan, math.nan
    return lat, lon


def photo_records(folder: str, files: list[str], heif: bool) -> Iterator[Record | Skip]:
    for rel in files:
        path = os.path.join(folder, rel)
        suffix = os.path.splitext(rel)[1].lower()
        if suffix in HEIF_SUFFIXES and not heif:
            yield Skip("HEIC/HEIF photos, unreadable without pillow-heif (pip install pillow-heif)", path)
            continue
        if suffix not in PILLOW_SUFFIXES + HEIF_SUFFIXES:
            yield Skip("files that are not photos", path)
            continue
        try:
            coordinates = gps_coordinates(path)
        except DataError:
            yield Skip("unreadable photos", path)
            continue
        if coordinates is None:
            yield Skip("photos without GPS EXIF", path)
            continue
        lat, lon = coordinates
        if lat == 0.0 and lon == 0.0:
            yield Skip("photos with GPS 0,0 (a camera without a fix)", path)
            continue
        yield Record(
            id=rel, images=[rel], lat=lat, lon=lon, where=path, coordinate_fields=("GPSLatitude", "GPSLongitude")
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", required=True, help="folder of photos (searched recursively); the image folder")


def read(args: argparse.Namespace) -> tuple[Iterator[Record | Skip], str, int]:
    if not os.path.isdir(args.photos):
        raise DataError(f"{args.photos}: photo folder not found")
    files = []
    for dirpath, dirnames, filenames in os.walk(args.photos):
        dirnames.sort()
        names = [n for n in sorted(filenames) if not n.startswith(".")]
        files.extend(os.path.relpath(os.path.join(dirpath, n), args.photos) for n in names)
    return photo_records(args.photos, files, heif_available()), args.photos, len(files)
