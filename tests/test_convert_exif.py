"""A folder of photos -> rows from GPS EXIF (degrees/minutes/seconds + hemisphere), skips counted by reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from open_r1.data import load_rows
from open_r1.data.convert import exif
from open_r1.data.convert.__main__ import main as convert_main
from open_r1.data.validate import validate


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees, minutes and seconds as EXIF stores them (rationals; seconds to 1/100)."""
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 100)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100)


def save_photo(path: Path, lat: float | None = None, lon: float | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif_data = Image.Exif()
    if lat is not None:
        gps = exif_data.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
        gps[ExifTags.GPS.GPSLatitude] = dms(lat)
        gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
        gps[ExifTags.GPS.GPSLongitude] = dms(lon)
    Image.new("RGB", (48, 32), (90, 120, 150)).save(path, format=fmt, exif=exif_data.tobytes())
    return path


def test_gps_exif_becomes_rows_in_all_four_hemispheres(tmp_path, capsys):
    photos = tmp_path / "phone"
    places = {
        "2023/rio.jpg": (-22.9068, -43.1729),
        "2023/tokyo.JPG": (35.6895, 139.6917),
        "2024/reykjavik.jpeg": (64.1466, -21.9426),
        "2024/sydney.png": (-33.8688, 151.2093),
    }
    for rel, (lat, lon) in places.items():
        save_photo(photos / rel, lat, lon, fmt="PNG" if rel.endswith(".png") else "JPEG")
    save_photo(photos / "2024/no_gps.jpg")
    save_photo(photos / "2024/null_island.jpg", 0.0, 0.0)
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")

    out = tmp_path / "mine.jsonl"
    assert convert_main(["exif", "--photos", str(photos), "--out", str(out), "--quiet"]) == 0
    rows = {r.id: r for r in load_rows(str(out), str(photos))}
    assert sorted(rows) == sorted(places)
    for rel, (lat, lon) in places.items():
        assert (rows[rel].lat, rows[rel].lon) == pytest.approx((lat, lon), abs=1e-5)  # seconds kept to 1/100
        assert rows[rel].image_paths == [str(photos / rel)]
    assert (rows["2023/rio.jpg"].country, rows["2024/sydney.png"].country) == ("BR", "AU")

    printed = capsys.readouterr().out
    assert "wrote 4 rows" in printed and "skipped 4 rows" in printed
    for reason, name in [
        ("photos without GPS EXIF", "no_gps.jpg"),
        ("photos with GPS 0,0 (a camera without a fix)", "null_island.jpg"),
        ("files that are not photos", "notes.txt"),
        ("photos that cannot be decoded (truncated or corrupt)", "broken.jpg"),
    ]:
        assert f"1 {reason} (e.g. {photos}/" in printed and name in printed
    assert f"{photos}/broken.jpg: not an image file Pillow can identify" in printed
    assert validate(str(out), str(photos)).ok


def test_heic_photos_with_gps_become_rows_through_pillow_heif(tmp_path):
    # pillow-heif is a dev requirement: without it this test fails rather than skipping the HEIC path.
    assert exif.heif_available(), "pillow-heif is not installed: pip install the dev requirements"
    photos = tmp_path / "iphone"
    heic = save_photo(photos / "IMG_0001.HEIC", 41.9028, 12.4964, fmt="HEIF")
    assert heic.read_bytes()[4:12] == b"ftypheic"  # a real HEIC container, not a JPEG with another suffix
    out = tmp_path / "heic.jsonl"
    assert convert_main(["exif", "--photos", str(photos), "--out", str(out), "--quiet"]) == 0
    (row,) = load_rows(str(out), str(photos))
    assert row.id == "IMG_0001.HEIC"
    assert (row.lat, row.lon) == pytest.approx((41.9028, 12.4964), abs=1e-5)
    assert row.country == "IT"


def test_heic_photos_are_skipped_and_counted_without_pillow_heif(tmp_path, capsys, monkeypatch):
    photos = tmp_path / "iphone"
    photos.mkdir()
    (photos / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # skipped by its suffix, never opened
    monkeypatch.setattr(exif, "heif_available", lambda: False)
    save_photo(photos / "paris.jpg", 48.8566, 2.3522)
    out = tmp_path / "without.jsonl"
    assert convert_main(["exif", "--photos", str(photos), "--out", str(out), "--quiet"]) == 0
    assert [r.id for r in load_rows(str(out), str(photos))] == ["paris.jpg"]
    assert "1 HEIC/HEIF photos, unreadable without pillow-heif (pip install pillow-heif)" in capsys.readouterr().out


def test_a_folder_without_any_gps_writes_nothing_and_fails(tmp_path, capsys):
    photos = tmp_path / "p"
    save_photo(photos / "a.jpg")
    out = tmp_path / "o.jsonl"
    assert convert_main(["exif", "--photos", str(photos), "--out", str(out), "--quiet"]) == 1
    assert not out.exists()
    captured = capsys.readouterr()
    assert "1 photos without GPS EXIF" in captured.out and "no rows were written" in captured.err


def test_photos_whose_picture_cannot_be_decoded_are_skipped_named_and_counted(tmp_path, capsys):
    """A cut-short copy keeps its EXIF header (GPS included) and opens fine; only decoding finds it."""
    import numpy as np

    photos = tmp_path / "card"
    good = save_photo(photos / "good.jpg", 48.8566, 2.3522)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    exif_data = Image.open(good).getexif()
    for name, keep in [("cut_half.jpg", 0.5), ("cut_tail.jpg", 0.97)]:
        full = photos / f"full_{name}"
        noisy.save(full, format="JPEG", quality=90, exif=exif_data.tobytes())
        data = full.read_bytes()
        full.unlink()
        (photos / name).write_bytes(data[: int(len(data) * keep)])
        with Image.open(photos / name) as opened:  # the header, GPS included, still reads
            assert opened.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    png = photos / "cut.png"
    noisy.save(png, format="PNG", exif=exif_data.tobytes())
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])

    out = tmp_path / "card.jsonl"
    assert convert_main(["exif", "--photos", str(photos), "--out", str(out), "--quiet"]) == 0
    assert [r.id for r in load_rows(str(out), str(photos))] == ["good.jpg"]
    printed = capsys.readouterr().out
    assert "3 photos skipped because they cannot be decoded:" in printed
    for name in ("cut.png", "cut_half.jpg", "cut_tail.jpg"):
        assert f"  {photos / name}: image file is truncated" in printed
    assert "3 photos that cannot be decoded (truncated or corrupt) (e.g." in printed
    assert validate(str(out), str(photos), decode_images=True).ok
