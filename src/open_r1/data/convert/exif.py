"""`exif`: a folder of your own photos -> rows from their GPS EXIF tags, pointing at the photos where they are.
HEIC/HEIF needs the optional `pillow-heif`; without it such photos are skipped and counted, like those without a
GPS fix. Every photo is decoded first, since an intact EXIF header can sit on a broken picture that would only
fail in training; the ones that fail are listed with the reason.

    python -m open_r1.data.convert exif --photos ~/Pictures/trip --out data/trip.jsonl
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Iterator

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


_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
UNDECODABLE = "photos that cannot be decoded (truncated or corrupt)"


def _gps(image: Image.Image) -> tuple[float, float] | None:
    gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    if ExifTags.GPS.GPSLatitude not in gps or ExifTags.GPS.GPSLongitude not in gps:
        return None
    try:
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef))
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef))
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan, math.nan
    return lat, lon


def _decode(image: Image.Image) -> None:
    """Decode the picture (a JPEG at 1/8 scale: every byte of its stream is still read); errors propagate."""
    if image.format == "JPEG":
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()


def _reason(err: BaseException) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not an image file Pillow can identify"
    return str(err).strip() or type(err).__name__


class PhotoRecords(Iterable):
    """The records of a folder's photos; after iterating, `notes()` lists the photos that could not be decoded."""

    def __init__(self, folder: str, files: list[str], heif: bool):
        self.folder, self.files, self.heif = folder, files, heif
        self.undecodable: list[tuple[str, str]] = []  # (path, reason)

    def __iter__(self) -> Iterator[Record | Skip]:
        for rel in self.files:
            path = os.path.join(self.folder, rel)
            suffix = os.path.splitext(rel)[1].lower()
            if suffix in HEIF_SUFFIXES and not self.heif:
                yield Skip("HEIC/HEIF photos, unreadable without pillow-heif (pip install pillow-heif)", path)
                continue
            if suffix not in PILLOW_SUFFIXES + HEIF_SUFFIXES:
                yield Skip("files that are not photos", path)
                continue
            skip = None
            try:
                with Image.open(path) as image:
                    coordinates = _gps(image)
                    if coordinates is None:
                        skip = "photos without GPS EXIF"
                    elif coordinates == (0.0, 0.0):
                        skip = "photos with GPS 0,0 (a camera without a fix)"
                    else:
                        _decode(image)  # only photos that would become rows: the others are skipped anyway
            except _DECODE_ERRORS as err:
                reason = _reason(err)
                self.undecodable.append((path, reason))
                yield Skip(UNDECODABLE, f"{path} ({reason})")
                continue
            if skip:
                yield Skip(skip, path)
                continue
            lat, lon = coordinates
            yield Record(
                id=rel, images=[rel], lat=lat, lon=lon, where=path,
                coordinate_fields=("GPSLatitude", "GPSLongitude"),
            )

    def notes(self) -> list[str]:
        if not self.undecodable:
            return []
        lines = [f"{len(self.undecodable):,} photos skipped because they cannot be decoded:"]
        lines += [f"  {path}: {reason}" for path, reason in self.undecodable]
        return lines


def photo_records(folder: str, files: list[str], heif: bool) -> PhotoRecords:
    return PhotoRecords(folder, files, heif)


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
