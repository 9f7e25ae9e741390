"""Data path throughput and memory: (a) streaming rows from a large jsonl, (b) decoding photos for training.

    python bench/data.py [--rows 1000000] [--images 2000] [--max_pixels 401408] [--with_load_rows] [--all_variants]
                         [--startup_rows 1000000,5000000] [--with_validate]

(a) writes a synthetic jsonl of `--rows` geo rows and reads it through `open_r1.data.streaming` the way
    training does (shuffled blocks + shuffle buffer, rows parsed and prompts built, images not decoded),
    then resumes at 90% of the stream to time the skip. `--with_load_rows` also loads the whole file
    with `load_rows`, the in-memory path, for contrast.
(b) writes `--images` synthetic 1600x1200 JPEGs (`--distinct` different pictures, copied to distinct
    files) and decodes each with `open_r1.data.images.load_image` at `--max_pixels`, against Pillow's plain
    `Image.open().convert("RGB")` (full size). `--all_variants` adds the raw decode followed by the resize
    training needs, and the draft-mode decode alone (what load_image costs without its final resize).

(c) start-up of a streamed GRPO run for each of `--startup_rows`: synthetic rows pointing at a few shared
    images, timed through the bounded start-up check every rank makes (`check_sample`: first rows + a random
    sample, images looked up) and the stream's first row (one pass numbering the blocks' lines);
    `--with_validate` adds the full `validate()` (a stat per image) that rank 0 used to run behind a barrier.

Every measurement runs in a fresh process, so its peak RSS is its own. Files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import shutil
import tempfile
import time

import numpy as np
from PIL import Image

CITIES = [
    ("Lisbon", "Lisbon", "PT", 38.7167, -9.1333), ("Paris", "Ile-de-France", "FR", 48.8534, 2.3488),
    ("Tokyo", "Tokyo", "JP", 35.6895, 139.6917), ("Nairobi", "Nairobi Area", "KE", -1.2833, 36.8167),
    ("Sao Paulo", "Sao Paulo", "BR", -23.5475, -46.6361), ("Sydney", "New South Wales", "AU", -33.8679, 151.2073),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def write_rows(path: str, n: int, shared_images: int = 0) -> None:
    """Rows shaped like converted OSV-5M output: one image each, coordinates, names and the gpt answer.
    Rows are formatted from a template (json.dumps per row would take longer than the reading it feeds)."""
    rng = np.random.default_rng(0)
    image = "shared/{shared}.jpg" if shared_images else "{folder:02d}/{id}.jpg"
    offsets = rng.uniform(-0.5, 0.5, (n, 2))
    template = (
        '{{"id": "{id}", "image": "' + image + '", "conversations": [{{"from": "human", "value": '
        '"<image>Where was this photo taken?"}}, {{"from": "gpt", "value": "Country: {country}\\nRegion: '
        '{region}\\nCity: {city}\\nLatitude: {lat:.4f}\\nLongitude: {lon:.4f}"}}], "lat": {lat:.6f}, '
        '"lon": {lon:.6f}, "country": "{country}", "region": "{region}", "city": "{city}"}}\n'
    )
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            city, region, country, lat, lon = CITIES[i % len(CITIES)]
            handle.write(template.format(
                id=1_000_000_000 + i, folder=i % 100, shared=i % max(1, shared_images), country=country, region=region, city=city,
                lat=lat + offsets[i, 0], lon=lon + offsets[i, 1],
            ))


def stream_rows(path: str, folder: str, start_row: int = 0, limit: int | None = None) -> dict:
    from open_r1.data.streaming import iter_rows

    began = time.perf_counter()
    count, first_after = 0, None
    for _ in iter_rows(path, folder, decode_images=False, start_row=start_row, seed=0):
        count += 1
        if first_after is None:
            first_after = time.perf_counter() - began
        if limit is not None and count >= limit:
            break
    seconds = time.perf_counter() - began
    return {"rows": count, "seconds": seconds, "first_row_s": first_after, "peak_rss_mb": peak_rss_mb()}


def load_all_rows(path: str, folder: str) -> dict:
    from open_r1.data import load_rows

    began = time.perf_counter()
    rows = load_rows(path, folder, check_images=False)
    return {"rows": len(rows), "seconds": time.perf_counter() - began, "peak_rss_mb": peak_rss_mb()}


def startup(path: str, folder: str, with_validate: bool) -> dict:
    from open_r1.data.streaming import check_sample, resolve_sources
    from open_r1.data.validate import validate

    began = time.perf_counter()
    checked = check_sample(resolve_sources(path, folder))
    result = {"checked": checked, "check_s": time.perf_counter() - began}
    result["first_row_s"] = stream_rows(path, folder, limit=1)["first_row_s"]
    if with_validate:
        began = time.perf_counter()
        validate(path, folder).raise_for_errors()
        result["validate_s"] = time.perf_counter() - began
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def synthetic_photo(seed: int, size=(1600, 1200)) -> bytes:
    """A photo-like JPEG: smooth gradients, a few shapes and sensor noise (quality 90, ~4:2:0 like cameras)."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-0.08, 0.08, (2, 3))
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    for _ in range(12):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(40, 300)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        pixels[mask] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_photos(folder: str, n: int, distinct: int) -> list[str]:
    pictures = [synthetic_photo(seed) for seed in range(distinct)]
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"{i:05d}.jpg")
        with open(path, "wb") as handle:
            handle.write(pictures[i % distinct])
        paths.append(path)
    return paths


def decode(paths: list[str], how: str, max_pixels: int) -> dict:
    from open_r1.data.images import load_image

    for path in paths[:20]:  # warm the page cache and imports alike for every method
        Image.open(path).convert("RGB")
    began = time.perf_counter()
    sizes = set()
    for path in paths:
        if how == "load_image":
            image = load_image(path, max_pixels)
        elif how == "draft":
            image = Image.open(path)
            scale = (max_pixels / (image.width * image.height)) ** 0.5
            image.draft("RGB", (int(image.width * scale), int(image.height * scale)))
            image.load()
        else:
            image = Image.open(path).convert("RGB")
            if how == "raw+resize":
                scale = (max_pixels / (image.width * image.height)) ** 0.5
                size = (round(image.width * scale), round(image.height * scale))
                image = image.resize(size, Image.Resampling.BICUBIC)
        sizes.add(image.size)
    seconds = time.perf_counter() - began
    return {"images": len(paths), "seconds": seconds, "sizes": sorted(sizes), "peak_rss_mb": peak_rss_mb()}


def isolated(function, *args) -> dict:
    """Run `function(*args)` in a fresh process, so that its peak RSS is not anyone else's."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=50, help="different pictures among the --images files")
    parser.add_argument("--max_pixels", type=int, default=401408)
    parser.add_argument("--with_load_rows", action="store_true", help="also time load_rows (all rows in memory)")
    parser.add_argument("--all_variants", action="store_true", help="also raw decode + resize, and draft decode alone")
    parser.add_argument("--skip", choices=["rows", "images", "startup"], action="append", default=[],
                        help="leave a part out (repeatable)")
    parser.add_argument("--startup_rows", default="1000000,5000000", help="row counts for (c), comma-separated")
    parser.add_argument("--with_validate", action="store_true", help="(c) also times the full validate()")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="geo-r-bench-")
    try:
        if "rows" not in args.skip:
            path = os.path.join(work, "rows.jsonl")
            began = time.perf_counter()
            write_rows(path, args.rows)
            print(f"(a) {args.rows:,} rows, {os.path.getsize(path) / 2**20:,.0f} MiB jsonl "
                  f"(written in {time.perf_counter() - began:.0f} s)")
            result = isolated(stream_rows, path, work)
            print(f"    streaming:        {result['rows'] / result['seconds']:>9,.0f} rows/s   "
                  f"peak RSS {result['peak_rss_mb']:,.0f} MB   ({result['seconds']:.1f} s; first row after "
                  f"{result['first_row_s']:.2f} s)")
            start = int(args.rows * 0.9)
            result = isolated(stream_rows, path, work, start, 1)
            print(f"    resume at row {start:,}: first row after {result['first_row_s']:.1f} s "
                  f"(rows before it are skipped unparsed)   peak RSS {result['peak_rss_mb']:,.0f} MB")
            if args.with_load_rows:
                result = isolated(load_all_rows, path, work)
                print(f"    load_rows (all in memory): {result['rows'] / result['seconds']:>9,.0f} rows/s   "
                      f"peak RSS {result['peak_rss_mb']:,.0f} MB   ({result['seconds']:.1f} s)")
            os.remove(path)
        if "images" not in args.skip:
            folder = os.path.join(work, "photos")
            os.makedirs(folder)
            began = time.perf_counter()
            paths = write_photos(folder, args.images, args.distinct)
            mean_kb = sum(os.path.getsize(p) for p in paths[: args.distinct]) / min(args.distinct, len(paths)) / 1024
            print(f"(b) {args.images:,} JPEGs of 1600x1200 (~{mean_kb:.0f} KiB each, written in "
                  f"{time.perf_counter() - began:.0f} s), max_pixels {args.max_pixels:,}")
            variants = ("raw", "load_image") + (("raw+resize", "draft") if args.all_variants else ())
            results = {how: isolated(decode, paths, how, args.max_pixels) for how in variants}
            for how, label in (("raw", "Image.open().convert()"), ("raw+resize", "  ... + resize to max_pixels"),
                               ("load_image", "load_image (draft mode)"), ("draft", "  draft decode alone")):
                if how not in results:
                    continue
                result = results[how]
                print(f"    {label:<30} {result['images'] / result['seconds']:>7.1f} images/s   peak RSS "
                      f"{result['peak_rss_mb']:,.0f} MB   output {'/'.join(f'{w}x{h}' for w, h in result['sizes'])}")
            speedup = results["raw"]["seconds"] / results["load_image"]["seconds"]
            print(f"    load_image is {speedup:.2f}x the speed of the raw full-size decode")
        if "startup" not in args.skip:
            folder = os.path.join(work, "startup")
            os.makedirs(os.path.join(folder, "shared"))
            for i in range(4):
                with open(os.path.join(folder, "shared", f"{i}.jpg"), "wb") as handle:
                    handle.write(synthetic_photo(i, (320, 240)))
            print("(c) start-up of a streamed run (every rank, no barrier)")
            for n in (int(x) for x in args.startup_rows.split(",")):
                path = os.path.join(work, "startup.jsonl")
                write_rows(path, n, shared_images=4)
                result = isolated(startup, path, folder, args.with_validate)
                line = (f"    {n:>9,} rows ({os.path.getsize(path) / 2**20:,.0f} MiB): check_sample {result['check_s']:.1f} s "
                        f"({result['checked']} rows), stream's first row {result['first_row_s']:.1f} s")
                if "validate_s" in result:
                    line += f", full validate() {result['validate_s']:.1f} s"
                print(line + f"   peak RSS {result['peak_rss_mb']:,.0f} MB")
                os.remove(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
