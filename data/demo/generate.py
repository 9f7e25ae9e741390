"""Generate the demo geolocation dataset shipped in `data/demo/`.

Sixteen real cities, each with its own visual signature (sky and ground colours, stripe angle and frequency,
a glyph shape), so a model can recover the place from the pixels; per-image noise, jitter and brightness keep
images of one city distinct. Each city gets single-photo rows and four-view rows (north, east, south, west)
so that batches mix image counts. Deterministic: running it again rewrites the same files.

    python data/demo/generate.py            # writes data/demo/{images,train.jsonl,test.jsonl}
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# city, region (GeoNames admin1), country (ISO 3166-1 alpha-2), lat, lon
CITIES = [
    ("Lisbon", "Lisbon", "PT", 38.7167, -9.1333),
    ("Paris", "Ile-de-France", "FR", 48.8534, 2.3488),
    ("Berlin", "Berlin", "DE", 52.5244, 13.4105),
    ("Moscow", "Moscow", "RU", 55.7522, 37.6156),
    ("Cairo", "Cairo", "EG", 30.0626, 31.2497),
    ("Nairobi", "Nairobi Area", "KE", -1.2833, 36.8167),
    ("Cape Town", "Western Cape", "ZA", -33.9258, 18.4232),
    ("Mumbai", "Maharashtra", "IN", 19.0728, 72.8826),
    ("Bangkok", "Bangkok", "TH", 13.7540, 100.5014),
    ("Tokyo", "Tokyo", "JP", 35.6895, 139.6917),
    ("Sydney", "New South Wales", "AU", -33.8679, 151.2073),
    ("Auckland", "Auckland", "NZ", -36.8485, 174.7633),
    ("Los Angeles", "California", "US", 34.0522, -118.2437),
    ("New York City", "New York", "US", 40.7143, -74.0060),
    ("Mexico City", "Mexico City", "MX", 19.4285, -99.1277),
    ("Sao Paulo", "Sao Paulo", "BR", -23.5475, -46.6361),
]
SIZE = 112
VIEWS = ("north", "east", "south", "west")


def city_style(index: int) -> dict:
    """A fixed visual signature for city `index`."""
    rng = np.random.default_rng(1000 + index)
    hue = index / len(CITIES)
    base = np.array([math.sin(2 * math.pi * (hue + k / 3)) * 0.5 + 0.5 for k in range(3)]) * 200 + 30
    accent = 255 - base
    return {
        "base": base,
        "accent": accent,
        "angle": (index * 37) % 180,
        "period": 6 + (index % 4) * 5,
        "glyph": index % 4,  # circle, square, triangle, cross
        "glyph_color": tuple(int(c) for c in rng.integers(0, 255, 3)),
    }


def render(style: dict, rng: np.random.Generator, view: int = 0) -> Image.Image:
    """One image: a sky in the city's base colour over ground in its accent colour, soft stripes on the ground
    at the city's angle and frequency, the city's glyph in the sky, and per-image horizon, brightness and noise.

    Large flat regions make every image patch carry the city's palette, so a small vision tower tells the
    cities apart from its first steps; the jitter keeps no two images alike.
    """
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    horizon = SIZE * (0.5 + rng.uniform(-0.02, 0.02))
    ground = (yy > horizon)[..., None].astype(np.float32)
    angle = math.radians(style["angle"] + rng.uniform(-8, 8) + 90 * view)
    wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * math.pi / style["period"] + rng.uniform(0, 2 * math.pi))
    pixels = style["base"] * (1 - ground) + style["accent"] * (0.95 + 0.05 * wave[..., None]) * ground
    pixels = pixels * rng.uniform(0.96, 1.04) + rng.normal(0, 4, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(8, 14))
    cx, cy = int(rng.integers(30, SIZE - 30)), int(rng.integers(20, max(int(horizon) - 5, 35)))
    box = [cx - r, cy - r, cx + r, cy + r]
    color = style["glyph_color"]
    if style["glyph"] == 0:
        draw.ellipse(box, fill=color)
    elif style["glyph"] == 1:
        draw.rectangle(box, fill=color)
    elif style["glyph"] == 2:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        draw.rectangle([cx - r, cy - 3, cx + r, cy + 3], fill=color)
        draw.rectangle([cx - 3, cy - r, cx + 3, cy + r], fill=color)
    return image


def make_row(row_id: str, images: list[str], city: tuple) -> dict:
    name, region, country, lat, lon = city
    question = "<image>" * len(images) + (
        "These are four views (north, east, south, west) of one place. Where were they taken?"
        if len(images) > 1
        else "Where was this photo taken?"
    )
    answer = f"Country: {country}\nRegion: {region}\nCity: {name}\nLatitude: {lat:.4f}\nLongitude: {lon:.4f}"
    return {
        "id": row_id,
        "image": images[0] if len(images) == 1 else images,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
        "lat": lat,
        "lon": lon,
        "country": country,
        "region": region,
        "city": name,
    }


def generate(out: Path, train_per_city: int = 8, test_per_city: int = 3, four_view_every: int = 4) -> None:
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "test": []}
    for index, city in enumerate(CITIES):
        style = city_style(index)
        slug = city[0].lower().replace(" ", "_")
        for split, count, seed in (("train", train_per_city, 0), ("test", test_per_city, 1)):
            rng = np.random.default_rng([index, seed])
            for k in range(count):
                row_id = f"{slug}-{split}-{k}"
                n_views = 4 if k % four_view_every == four_view_every - 1 else 1
                names = []
                for v in range(n_views):
                    rel = f"{slug}/{row_id}" + (f"-{VIEWS[v]}" if n_views > 1 else "") + ".jpg"
                    (images_dir / slug).mkdir(exist_ok=True)
                    render(style, rng, v).save(images_dir / rel, quality=85)
                    names.append(rel)
                splits[split].append(make_row(row_id, names, city))
    for split, rows in splits.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} rows -> {out / f'{split}.jsonl'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--train_per_city", type=int, default=8)
    parser.add_argument("--test_per_city", type=int, default=3)
    args = parser.parse_args()
    generate(Path(args.out), args.train_per_city, args.test_per_city)
