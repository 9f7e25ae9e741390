"""Throughput of evaluation: generation per batch size, then scoring, metrics and plots at benchmark scale.

    python bench/eval.py [--model .cache/tiny-qwen2.5-vl] [--rows 16] [--batch_sizes 1 4 8] [--max_new_tokens 32]
                         [--score_rows 3000]

Generation runs on the demo held-out split with the transformers engine (what a machine without vLLM uses);
rows/s counts whole rows: image decoding, prompt building, generate and decoding. Scoring times
`build_records` (parsing, distances, reverse geocoding of prediction and truth), `compute_metrics` and both
plots on `--score_rows` synthetic parseable predictions, i.e. an IM2GPS3K-sized run; the one-off loading of
the place table is timed apart.
"""

from __future__ import annotations

import argparse
import random
import time

from open_r1.data import load_rows
from open_r1.data.rows import Row
from open_r1.evaluation import plots
from open_r1.evaluation.generation import Sampling, TransformersGenerator, row_conversation
from open_r1.evaluation.loading import load_inference_model, load_inference_processor, resolve_model
from open_r1.evaluation.metrics import compute_metrics
from open_r1.evaluation.records import build_records
from open_r1.geo.geocode import _places


def bench_generation(args: argparse.Namespace) -> None:
    rows = load_rows("data/demo/test.jsonl", "data/demo/images", max_rows=args.rows)
    source = resolve_model(args.model)
    model = load_inference_model(source)
    processor = load_inference_processor(source, min_pixels=3136, max_pixels=args.max_pixels)
    generator = TransformersGenerator(model, processor, Sampling(max_new_tokens=args.max_new_tokens))
    generator([row_conversation(rows[0], None, args.max_pixels)])  # warm-up
    for batch_size in args.batch_sizes:
        start = time.perf_counter()
        for i in range(0, len(rows), batch_size):
            batch = rows[i:i + batch_size]
            generator([row_conversation(row, None, args.max_pixels) for row in batch])
        seconds = time.perf_counter() - start
        print(f"generate  batch {batch_size:>3}: {len(rows) / seconds:7.2f} rows/s  "
              f"({len(rows)} rows, {args.max_new_tokens} new tokens, max_pixels {args.max_pixels})")


def bench_scoring(n: int) -> None:
    start = time.perf_counter()
    _places()
    print(f"place table load: {time.perf_counter() - start:.2f} s (once per process)")
    rng = random.Random(0)
    rows, completions = [], []
    for i in range(n):
        lat, lon = rng.uniform(-60, 70), rng.uniform(-180, 180)
        rows.append(Row(id=str(i), image_paths=["x.jpg"], question="", solution="", lat=lat, lon=lon, source=f"b:{i}"))
        guess = (max(-90, min(90, lat + rng.gauss(0, 3))), (lon + rng.gauss(0, 3) + 180) % 360 - 180)
        answer = f"Latitude: {guess[0]:.4f}\nLongitude: {guess[1]:.4f}"
        completions.append([f"<think>...</think>\n<answer>{answer}</answer>"])
    timings = {}
    start = time.perf_counter()
    records = build_records(rows, completions)
    timings["build_records"] = time.perf_counter() - start
    start = time.perf_counter()
    compute_metrics(records)
    timings["compute_metrics"] = time.perf_counter() - start
    start = time.perf_counter()
    plots.error_cdf(records, "/tmp/bench_eval_cdf.png")
    plots.world_map(records, "/tmp/bench_eval_map.png")
    timings["plots"] = time.perf_counter() - start
    for name, seconds in timings.items():
        print(f"{name:<16} {n} rows: {seconds:6.2f} s ({n / seconds:,.0f} rows/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=".cache/tiny-qwen2.5-vl")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--max_pixels", type=int, default=12544)
    parser.add_argument("--score_rows", type=int, default=3000)
    args = parser.parse_args()
    bench_generation(args)
    bench_scoring(args.score_rows)


if __name__ == "__main__":
    main()
