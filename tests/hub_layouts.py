"""Small datasets in the layouts geolocation data has on the Hugging Face Hub, made here (no hub access needed):
OSV-5M's parquet shards with embedded JPEGs, an MP-16-style imagefolder with metadata.csv, a `save_to_disk`
DatasetDict with a ClassLabel country, and one parquet file of multi-view rows with a `coordinates` column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image

# (lat, lon, ISO country, region, city): spread over continents, so rewards and metrics see distinct places
PLACES = [
    (48.8566, 2.3522, "FR", "Île-de-France", "Paris"),
    (35.6762, 139.6503, "JP", "Tokyo", "Tokyo"),
    (-33.8688, 151.2093, "AU", "New South Wales", "Sydney"),
    (40.7128, -74.0060, "US", "New York", "New York City"),
    (-22.9068, -43.1729, "BR", "Rio de Janeiro", "Rio de Janeiro"),
    (30.0444, 31.2357, "EG", "Cairo", "Cairo"),
]


def jpeg(i: int, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40 * i % 255, 90 + 20 * (i % 5), 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def osv5m_table(n: int, offset: int = 0) -> dict[str, list]:
    places = [PLACES[(offset + i) % len(PLACES)] for i in range(n)]
    return {
        "image": [{"bytes": jpeg(offset + i), "path": None} for i in range(n)],
        "id": [f"osv-{offset + i}" for i in range(n)],
        "latitude": [p[0] for p in places],
        "longitude": [p[1] for p in places],
        "country": [p[2] for p in places],
        "region": [p[3] for p in places],
        "sub-region": [None] * n,
        "city": [p[4] for p in places],
    }


def osv5m_features():
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    return Features({"image": ImageFeature(), "id": Value("string"), "latitude": Value("float32"),
                     "longitude": Value("float32"), "country": Value("string"), "region": Value("string"),
                     "sub-region": Value("string"), "city": Value("string")})


def osv5m_parquet(root: Path, train: int = 8, test: int = 4) -> Path:
    from datasets import Dataset

    folder = root / "osv5m"
    (folder / "data").mkdir(parents=True)
    for split, n, offset in (("train", train, 0), ("test", test, 100)):
        Dataset.from_dict(osv5m_table(n, offset), features=osv5m_features()).to_parquet(
            str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def mp16_imagefolder(root: Path, train: int = 8, test: int = 4) -> Path:
    folder = root / "mp16"
    for split, n, offset in (("train", train, 0), ("test", test, 100)):
        (folder / split).mkdir(parents=True)
        with open(folder / split / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "IMG_ID", "LAT", "LON", "city", "state", "country"])
            for i in range(n):
                lat, lon, country, region, city = PLACES[(offset + i) % len(PLACES)]
                name = f"{offset + i:05d}.jpg"
                (folder / split / name).write_bytes(jpeg(offset + i))
                writer.writerow([name, f"mp16_{offset + i}", lat, lon, city, region, country])
    return folder


def labelled_save_to_disk(root: Path, train: int = 8, test: int = 4) -> Path:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from datasets import Image as ImageFeature

    codes = sorted({p[2].lower() for p in PLACES})
    features = Features({"lat": Value("float64"), "lon": Value("float64"), "country_code": ClassLabel(names=codes),
                         "image": ImageFeature()})
    splits = {}
    for split, n, offset in (("train", train, 0), ("test", test, 100)):
        places = [PLACES[(offset + i) % len(PLACES)] for i in range(n)]
        splits[split] = Dataset.from_dict({
            "lat": [p[0] for p in places], "lon": [p[1] for p in places],
            "country_code": [codes.index(p[2].lower()) for p in places],
            "image": [{"bytes": jpeg(offset + i), "path": None} for i in range(n)],
        }, features=features)
    folder = root / "saved"
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def coordinates_parquet(root: Path, n: int = 8, views: int = 2) -> Path:
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    features = Features({"key": Value("string"), "images": List(ImageFeature()), "coordinates": List(Value("float64"))})
    places = [PLACES[i % len(PLACES)] for i in range(n)]
    path = root / "views.parquet"
    root.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict({
        "key": [f"place-{i}" for i in range(n)],
        "images": [[{"bytes": jpeg(i * views + k), "path": None} for k in range(views)] for i in range(n)],
        "coordinates": [[p[0], p[1]] for p in places],
    }, features=features).to_parquet(str(path))
    return path


LAYOUTS = {"osv5m_parquet": osv5m_parquet, "mp16_imagefolder": mp16_imagefolder,
           "labelled_save_to_disk": labelled_save_to_disk, "coordinates_parquet": coordinates_parquet}
