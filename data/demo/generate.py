"""Generate the demo geolocation dataset shipped in `data/demo/`.

Sixty-four real cities on every inhabited continent, in four world regions of sixteen cities, each region in
four neighbourhoods of four cities. A picture shows its place coarse to fine, in three bands: the sky's colour
gives the world region (as vegetation and light give away a continent), the skyline's the neighbourhood and the
ground's the city. So a model that reads part of a picture earns part of the credit (the right continent is worth
GeoGuessr points, only the right city lands within 25 km), which is what makes a distance reward informative.
Band edges, stripe angle, brightness and noise differ from picture to picture.

Photos of a city are spread over a few kilometres around its centre; country, region and city labels are those
of the centre by the project's own labelling rule (`open_r1.geo.labels`), the truth the rewards pay and the
evaluation scores. Each city gets single-photo rows and four-view rows (north, east, south, west), so batches
mix image counts. The held-out split has three photos per city: no city weighs more than 1.6% of any held-out
figure. The GRPO split (80 rows: a photo of every city and a four-view row of one city in each neighbourhood) holds
photos the SFT warm start never sees, so GRPO learns from answers it has not memorised. Deterministic: running it
again rewrites the same files, and each split draws from its own generator, so adding one changes no other.

The dev split (`--dev`, generated, not shipped) is a second held-out set like the test split, drawn from its own
generator: choose a recipe on it (`bench/learning.py --dev`), so the test split measures the recipe rather than
the choice.

The zoom variant (`--zoom`) is a demo where only a zoom tells the city. Its 448-pixel photos show the world region
in the sky and nothing else of the place, except a small sign: three stripes of fine two-colour checks, whose
colour axes (none, light-dark, red-green, yellow-blue) spell the region, neighbourhood and city. Every sign has
the same mean colour, and the checks are laid out so that the loader's 1/4-scale JPEG decode (the demo's
112-pixel view at `max_pixels` 12544) keeps only that mean: at the default size every sign is the same grey
square. `zoom(0.625, 0.625, 0.875, 0.875)` (each row's `clue_box`) cuts the sign's corner from the full photo at
full resolution, where the checks are plain to see. Single-photo rows only; it is generated, not shipped.

    python data/demo/generate.py            # writes data/demo/{images,train.jsonl,test.jsonl,grpo.jsonl}
    python data/demo/generate.py --zoom     # writes output/demo-zoom/{images,train.jsonl,test.jsonl,grpo.jsonl}
    python data/demo/generate.py --dev      # writes output/demo-dev/: the shipped splits and dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from open_r1.geo.labels import resolve_places

# city, lat, lon (GeoNames coordinates of each centre): four world regions of four neighbourhoods of four cities
CITIES = [
    # Europe
    ("Lisbon", 38.7167, -9.1333), ("Madrid", 40.4165, -3.7026), ("Paris", 48.8534, 2.3488),
    ("London", 51.5085, -0.1257),
    ("Dublin", 53.3331, -6.2489), ("Amsterdam", 52.3740, 4.8897), ("Berlin", 52.5244, 13.4105),
    ("Stockholm", 59.3294, 18.0687),
    ("Rome", 41.8919, 12.5113), ("Vienna", 48.2085, 16.3721), ("Athens", 37.9838, 23.7278),
    ("Istanbul", 41.0138, 28.9497),
    ("Warsaw", 52.2298, 21.0118), ("Helsinki", 60.1695, 24.9354), ("Kyiv", 50.4547, 30.5238),
    ("Moscow", 55.7522, 37.6156),
    # Africa and the Middle East
    ("Casablanca", 33.5883, -7.6114), ("Dakar", 14.6937, -17.4441), ("Accra", 5.5560, -0.1969),
    ("Lagos", 6.4541, 3.3947),
    ("Tunis", 36.8190, 10.1658), ("Cairo", 30.0626, 31.2497), ("Addis Ababa", 9.0250, 38.7469),
    ("Nairobi", -1.2833, 36.8167),
    ("Kinshasa", -4.3276, 15.3136), ("Johannesburg", -26.2023, 28.0436), ("Cape Town", -33.9258, 18.4232),
    ("Antananarivo", -18.9137, 47.5361),
    ("Riyadh", 24.6877, 46.7219), ("Dubai", 25.0772, 55.3093), ("Tehran", 35.6944, 51.4215),
    ("Karachi", 24.8608, 67.0104),
    # Asia
    ("Delhi", 28.6519, 77.2315), ("Mumbai", 19.0728, 72.8826), ("Bengaluru", 12.9719, 77.5937),
    ("Kathmandu", 27.7017, 85.3206),
    ("Dhaka", 23.7104, 90.4074), ("Bangkok", 13.7540, 100.5014), ("Hanoi", 21.0245, 105.8412),
    ("Kuala Lumpur", 3.1412, 101.6865),
    ("Jakarta", -6.2146, 106.8451), ("Manila", 14.6042, 120.9822), ("Hong Kong", 22.2783, 114.1747),
    ("Shanghai", 31.2222, 121.4581),
    ("Beijing", 39.9075, 116.3972), ("Seoul", 37.5660, 126.9784), ("Osaka", 34.6937, 135.5022),
    ("Tokyo", 35.6895, 139.6917),
    # the Americas and Oceania
    ("Seattle", 47.6062, -122.3321), ("Los Angeles", 34.0522, -118.2437), ("Denver", 39.7392, -104.9847),
    ("Mexico City", 19.4285, -99.1277),
    ("Chicago", 41.8500, -87.6500), ("Toronto", 43.7001, -79.4163), ("New York City", 40.7143, -74.0060),
    ("Bogota", 4.6097, -74.0817),
    ("Lima", -12.0432, -77.0282), ("Santiago", -33.4569, -70.6483), ("Buenos Aires", -34.6131, -58.3772),
    ("Sao Paulo", -23.5475, -46.6361),
    ("Perth", -31.9522, 115.8614), ("Melbourne", -37.8140, 144.9633), ("Sydney", -33.8679, 151.2073),
    ("Auckland", -36.8485, 174.7633),
]
SIZE = 112
VIEWS = ("north", "east", "south", "west")
# Twelve colours far apart from one another, four per band, so that every patch tells its band and its colour.
SKY = ((120, 175, 250), (250, 165, 40), (245, 120, 205), (235, 235, 130))  # by world region
SKYLINE = ((150, 25, 25), (25, 115, 35), (25, 35, 130), (105, 45, 150))  # by neighbourhood
GROUND = ((115, 75, 30), (130, 130, 130), (20, 20, 20), (240, 240, 240))  # by city
SPREAD_DEG = 0.02  # up to 0.02 degrees in latitude and longitude: within about 3 km of the centre


def city_style(index: int) -> dict:
    """The visual signature of city `index`: the sky's colour by world region, the skyline's by neighbourhood,
    the ground's by city."""
    return {
        "sky": np.array(SKY[index // 16], dtype=np.float32),
        "skyline": np.array(SKYLINE[(index // 4) % 4], dtype=np.float32),
        "ground": np.array(GROUND[index % 4], dtype=np.float32),
        "angle": (index * 37) % 180,
        "period": 6 + (index % 3) * 4,
    }


def render(style: dict, rng: np.random.Generator, view: int = 0) -> Image.Image:
    """One picture in three bands, sky over skyline over ground, with soft stripes on the ground; per-picture
    band edges, stripe angle, brightness and noise. Flat bands make every patch carry one band's colour, so a
    small vision tower can tell the place apart, coarse (sky) to fine (ground)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    top = SIZE * (0.36 + rng.uniform(-0.04, 0.04))
    bottom = SIZE * (0.66 + rng.uniform(-0.04, 0.04))
    band = np.where(yy < top, 0, np.where(yy < bottom, 1, 2))[..., None]
    angle = math.radians(style["angle"] + rng.uniform(-15, 15) + 90 * view)
    wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * math.pi / style["period"] + rng.uniform(0, 2 * math.pi))
    ground = style["ground"] * (0.92 + 0.08 * wave[..., None])
    pixels = np.where(band == 0, style["sky"], np.where(band == 1, style["skyline"], ground))
    pixels = pixels * rng.uniform(0.94, 1.06) + rng.normal(0, 5, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# --- the zoom variant --------------------------------------------------------------------------------------------

ZOOM_SIZE = 4 * SIZE  # the loader decodes a JPEG this large at 1/4 scale: the demo's 112-pixel view
CLUE_BOX = [0.625, 0.625, 0.875, 0.875]  # 112 pixels a side at 448: the zoom keeps the crop at full resolution
SIGN_SIDE = 48  # three stripes of 16 pixels; the sign moves within the clue box in steps of one JPEG block
SIGN_MEAN = np.array((128.0, 128.0, 128.0), dtype=np.float32)
# colour axes of the checks: +/- each axis around SIGN_MEAN (the first is a plain grey stripe)
SIGN_AXES = ((0, 0, 0), (70, 70, 70), (80, -80, 0), (40, 40, -80))
# Checks of 2 pixels, balanced and symmetric about the centre of every 8-pixel JPEG block: the 1/4-scale decode
# keeps a block's mean and its lowest (odd) frequencies, and the checks have none (tests/test_demo_zoom.py).
_BLOCK = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float32)
ZOOM_BACKGROUND = {"skyline": np.array((95, 95, 105), dtype=np.float32),
                   "ground": np.array((120, 100, 70), dtype=np.float32), "angle": 30, "period": 8}


def sign_code(index: int) -> tuple[int, int, int]:
    """The colour axes of city `index`'s three stripes: world region, neighbourhood, city."""
    return index // 16, (index // 4) % 4, index % 4


def sign_pixels(code: tuple[int, int, int]) -> np.ndarray:
    """A SIGN_SIDE x SIGN_SIDE sign: one stripe of checks per code digit, top to bottom."""
    checks = np.outer(np.tile(_BLOCK, SIGN_SIDE // 8), np.tile(_BLOCK, SIGN_SIDE // 8))[..., None]
    stripe = SIGN_SIDE // 3
    axes = np.concatenate([np.repeat(np.array(SIGN_AXES[d], dtype=np.float32)[None], stripe, 0) for d in code])
    return SIGN_MEAN + checks * axes[:, None, :]


def render_zoom(index: int, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int]]:
    """A zoom-variant photo of city `index` and the sign's top-left corner: the sky tells the world region, the
    rest is the same for every city, and the sign sits somewhere in the clue box, aligned to JPEG blocks."""
    style = {**ZOOM_BACKGROUND, "sky": np.array(SKY[index // 16], dtype=np.float32)}
    scene = render(style, rng).resize((ZOOM_SIZE, ZOOM_SIZE), Image.Resampling.BICUBIC)
    pixels = np.asarray(scene, dtype=np.float32) + rng.normal(0, 3, (ZOOM_SIZE, ZOOM_SIZE, 3))
    low, high = round(CLUE_BOX[0] * ZOOM_SIZE) // 8 + 1, (round(CLUE_BOX[2] * ZOOM_SIZE) - SIGN_SIDE) // 8 - 1
    x0, y0 = (8 * int(rng.integers(low, high + 1)) for _ in range(2))
    pixels[y0:y0 + SIGN_SIDE, x0:x0 + SIGN_SIDE] = sign_pixels(sign_code(index))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), (x0, y0)


def save_zoom_photo(image: Image.Image, path: Path) -> None:
    """Full-colour JPEG (no chroma subsampling, quality 95), so the checks survive at full resolution."""
    image.save(path, quality=95, subsampling=0)


def make_row(row_id: str, images: list[str], lat: float, lon: float) -> dict:
    question = "<image>" * len(images) + (
        "These are four views (north, east, south, west) of one place. Where were they taken?"
        if len(images) > 1
        else "Where was this photo taken?"
    )
    return {
        "id": row_id,
        "image": images[0] if len(images) == 1 else images,
        "conversations": [{"from": "human", "value": question}],
        "lat": lat,
        "lon": lon,
    }


def label(rows: list[dict], centres: list[tuple[float, float]]) -> None:
    """Country, region and city of every row: those of its city's centre by the labelling rule the rewards and
    the evaluation use; and the reference answer in the conversation."""
    places = resolve_places([c[0] for c in centres], [c[1] for c in centres])
    for row, country, region, city in zip(rows, places.country.tolist(), places.region.tolist(),
                                          places.city.tolist()):
        row.update(country=country, region=region, city=city)
        answer = "\n".join(f"{key}: {value}" for key, value in
                           (("Country", country), ("Region", region), ("City", city)) if value)
        row["conversations"].append(
            {"from": "gpt", "value": f"{answer}\nLatitude: {row['lat']:.4f}\nLongitude: {row['lon']:.4f}"})


def generate(out: Path, train_per_city: int = 8, test_per_city: int = 3, four_view_every: int = 4,
             zoom: bool = False, dev: bool = False) -> None:
    images_dir = out / "images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    splits: dict[str, list[dict]] = {"train": [], "test": [], "grpo": [], **({"dev": []} if dev else {})}
    centres: dict[str, list[tuple[float, float]]] = {name: [] for name in splits}
    for index, city in enumerate(CITIES):
        style = city_style(index)
        slug = city[0].lower().replace(" ", "_")
        (images_dir / slug).mkdir()
        grpo_count = 2 if index % 4 == 0 else 1  # 80 rows: 10 GRPO steps of 8 photos
        counts = (("train", train_per_city, 0), ("test", test_per_city, 1), ("grpo", grpo_count, 2),
                  ("dev", test_per_city, 3))
        for split, count, seed in counts:
            if split not in splits:
                continue
            rng = np.random.default_rng([index, seed])
            for k in range(count):
                row_id = f"{slug}-{split}-{k}"
                lat = round(city[1] + rng.uniform(-SPREAD_DEG, SPREAD_DEG), 4)
                lon = round(city[2] + rng.uniform(-SPREAD_DEG, SPREAD_DEG), 4)
                if zoom:
                    rel = f"{slug}/{row_id}.jpg"
                    save_zoom_photo(render_zoom(index, rng)[0], images_dir / rel)
                    splits[split].append({**make_row(row_id, [rel], lat, lon), "clue_box": CLUE_BOX})
                    centres[split].append((city[1], city[2]))
                    continue
                n_views = 4 if (k + index) % four_view_every == four_view_every - 1 else 1
                names = []
                for v in range(n_views):
                    rel = f"{slug}/{row_id}" + (f"-{VIEWS[v]}" if n_views > 1 else "") + ".jpg"
                    render(style, rng, v).save(images_dir / rel, quality=85)
                    names.append(rel)
                splits[split].append(make_row(row_id, names, lat, lon))
                centres[split].append((city[1], city[2]))
    for split, rows in splits.items():
        label(rows, centres[split])
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} rows -> {out / f'{split}.jsonl'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None,
                        help="default: data/demo, or output/demo-zoom with --zoom (the shipped demo is never replaced)")
    parser.add_argument("--train_per_city", type=int, default=8)
    parser.add_argument("--test_per_city", type=int, default=3)
    parser.add_argument("--zoom", action="store_true", help="the zoom variant: only a small sign tells the city")
    parser.add_argument("--dev", action="store_true",
                        help="add the dev split (dev.jsonl), a second held-out set for choosing a recipe")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    variant = "demo-zoom" if args.zoom else "demo-dev" if args.dev else None
    out = Path(args.out) if args.out else (here.parent.parent / "output" / variant if variant else here)
    if variant and out.resolve() == here:
        parser.error(f"--{variant[5:]} would change the shipped demo in {here}: choose another --out")
    generate(out, args.train_per_city, args.test_per_city, zoom=args.zoom, dev=args.dev)
