"""WebDataset shards -> extracted images + jsonl: brace patterns, per-shard folders, counted skips."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

from PIL import Image

from open_r1.data import load_rows
from open_r1.data.convert.__main__ import main as convert_main
from open_r1.data.validate import validate


def jpeg_bytes(color: tuple[int, int, int], size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_shard(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """A WebDataset shard: each sample's files are `<key>.<ext>`, one after another."""
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            key = sample["__key__"]
            for ext, data in sample.items():
                if ext == "__key__":
                    continue
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def meta(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_shards_by_brace_pattern_become_rows_and_extracted_images(tmp_path, capsys):
    red, green, blue = jpeg_bytes((200, 0, 0)), jpeg_bytes((0, 200, 0)), jpeg_bytes((0, 0, 200))
    write_shard(tmp_path / "train-000.tar", [
        {"__key__": "000000", "jpg": red, "json": meta(lat=35.6895, lon=139.6917, country="JP", city="Tokyo")},
        {"__key__": "000001", "jpg": green, "json": meta(latitude=-1.2833, longitude=36.8167)},
        {"__key__": "000002", "json": meta(lat=1.0, lon=2.0)},  # no image
    ])
    write_shard(tmp_path / "train-001.tar", [
        {"__key__": "000000", "jpeg": blue, "json": meta(lat=52.52, lon=13.405, id="berlin-1")},  # key reused
        {"__key__": "000001", "jpg": red},  # no json
        {"__key__": "000002", "jpg": red, "json": meta(lat="north", lon=2.0)},  # no usable coordinates
    ])
    out = tmp_path / "out" / "wds.jsonl"
    images = tmp_path / "out" / "images"
    pattern = str(tmp_path / "train-{000..001}.tar")
    assert convert_main(["webdataset", "--shards", pattern, "--out", str(out), "--quiet"]) == 0

    rows = load_rows(str(out), str(images))
    assert [r.id for r in rows] == ["train-000/000000", "train-000/000001", "berlin-1"]
    assert [Path(r.image_paths[0]).relative_to(images).as_posix() for r in rows] == [
        "train-000/000000.jpg", "train-000/000001.jpg", "train-001/000000.jpeg"
    ]
    # the extracted files are the shards' bytes, and the reused key did not overwrite the first shard's image
    assert [Path(r.image_paths[0]).read_bytes() for r in rows] == [red, green, blue]
    tokyo, nairobi, berlin = rows
    assert (tokyo.country, tokyo.city, tokyo.lat, tokyo.lon) == ("JP", "Tokyo", 35.6895, 139.6917)
    assert (nairobi.lat, nairobi.lon, nairobi.country) == (-1.2833, 36.8167, "KE")  # 'latitude' keys, names filled
    assert berlin.country == "DE"

    printed = capsys.readouterr().out
    assert "wrote 3 rows" in printed and "skipped 3 rows" in printed
    kinds = "jpg/jpeg/png/webp/bmp/gif/tif/tiff/heic/heif"  # every image type geo-r reads (data/images.py)
    assert f"1 samples without an image ({kinds}) (e.g. {tmp_path / 'train-000.tar'}:000002)" in printed
    assert f"1 samples without a json (e.g. {tmp_path / 'train-001.tar'}:000001)" in printed
    assert "1 samples without numeric lat/lon in their json" in printed
    assert validate(str(out), str(images)).ok


def test_a_missing_or_compressed_shard_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    missing = str(tmp_path / "nope-{0..1}.tar")
    assert convert_main(["webdataset", "--shards", missing, "--out", str(out), "--quiet"]) == 2
    assert "nope-0.tar: shard not found" in capsys.readouterr().err

    sample = {"__key__": "k", "jpg": jpeg_bytes((1, 2, 3)), "json": meta(lat=1, lon=2)}
    plain = write_shard(tmp_path / "a.tar", [sample])
    packed = tmp_path / "b.tar"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert convert_main(["webdataset", "--shards", str(packed), "--out", str(out), "--quiet"]) == 2
    assert "b.tar: not an uncompressed tar shard" in capsys.readouterr().err


def test_labels_written_as_nan_are_filled_never_the_place_nan(tmp_path, capsys):
    write_shard(tmp_path / "pd-000.tar", [  # what a pandas-made shard writer leaves for empty cells
        {"__key__": "0", "jpg": jpeg_bytes((9, 9, 9)),
         "json": b'{"lat": 48.8566, "lon": 2.3522, "country": NaN, "region": "nan", "city": null, "id": NaN}'},
        {"__key__": "1", "jpg": jpeg_bytes((9, 9, 9)),
         "json": b'{"lat": -22.5609, "lon": 17.0658, "country": "NA", "region": "None", "city": "<NA>"}'},
    ])
    out = tmp_path / "wds.jsonl"
    assert convert_main(["webdataset", "--shards", str(tmp_path / "pd-000.tar"), "--out", str(out), "--quiet"]) == 0
    paris, windhoek = load_rows(str(out), str(tmp_path / "images"))
    assert paris.id == "pd-000/0" and paris.country == "FR" and paris.region and paris.city
    assert windhoek.country == "NA" and windhoek.region and windhoek.city  # Namibia, filled by the geocoder
    for row in (paris, windhoek):
        assert {row.region.lower(), row.city.lower()}.isdisjoint({"nan", "none", "null", "<na>"})
    assert "names filled by offline reverse geocoding: country 1, region 2, city 2" in capsys.readouterr().out
