"""Does each optimised path still pay for itself? Each is timed against the plain path it replaces, taking turns.

    python bench/clever_paths.py                     # every measure, 5 turns each (about 30 minutes on 2 busy cores)
    python bench/clever_paths.py --only prefill_real --repeats 7

Measures (on/off taking turns in one process, ABAB..., medians of wall and CPU seconds; ratio = off / on, > 1
means the path saves):
- `parse`: `parse_answer` over a batch of synthetic completions (bench/rewards.py), with the whole-answer match of
  the prompted format or through the general scan alone;
- `demo_step`: a GRPO step of the demo recipe (data_config/demo.yaml) on the tiny model, shared prefill on / off;
- `prefill_real`: one process generating G completions for one 4-view prompt with the 3B-width, 2-layer model
  of the rehearsal (output/rehearsal/models/qwen2.5-vl-3b-2l2v, built by bench/rehearse.py), prefill shared or not;
- `latlon`: the lat/lon order detector against the rule "a value beyond +-90 says swapped, else as named", on
  synthetic tables (half of them swapped) of places near GeoNames places, several regions and sizes: right,
  wrong and asked per group, and the time.
Each measure appends a row to bench/results/clever_paths.jsonl. The paths this bench showed not to pay (the
parser's whole-completion match, the rewards' collector pause) are gone; their rows stay in that file and
docs/design.md ("Paths kept and removed").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "clever_paths.jsonl"
REAL_WIDTH = REPO / "output" / "rehearsal" / "models" / "qwen2.5-vl-3b-2l2v"
MEASURES = ("parse", "latlon", "demo_step", "prefill_real")


# ----------------------------------------------------------------------------------------------- recording


class Clock:
    """Wall and CPU seconds (this process, all its threads) of a `with` block: the CPU figure is the one other
    work on the machine moves least."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    @property
    def both(self) -> tuple[float, float]:
        return self.wall, self.cpu


def record(measure: str, path: str, what: str, on: list[tuple[float, float]], off: list[tuple[float, float]],
           **extra) -> dict:
    """Print and append one on/off comparison of (wall, CPU) seconds; ratio = median off / median on."""
    med = {(name, k): statistics.median(t[k] for t in runs) for name, runs in (("on", on), ("off", off))
           for k in (0, 1)}
    row = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.machine()}), load average {os.getloadavg()[0]:.1f}",
        "measure": measure,
        "path": path,
        "what": what,
        "repeats": len(on),
        "on_median_s": round(med["on", 0], 5),
        "off_median_s": round(med["off", 0], 5),
        "ratio": round(med["off", 0] / med["on", 0], 3),
        "saving": round(1 - med["on", 0] / med["off", 0], 3),
        "on_cpu_median_s": round(med["on", 1], 5),
        "off_cpu_median_s": round(med["off", 1], 5),
        "cpu_ratio": round(med["off", 1] / med["on", 1], 3),
        "cpu_saving": round(1 - med["on", 1] / med["off", 1], 3),
        "on_s": [round(t[0], 5) for t in on],
        "off_s": [round(t[0], 5) for t in off],
        **extra,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(f"{measure}: {path}: {what}: wall on {row['on_median_s']:.4f} s, off {row['off_median_s']:.4f} s, off/on "
          f"{row['ratio']:.3f} (saves {row['saving']:.1%}); CPU on {row['on_cpu_median_s']:.4f} s, off "
          f"{row['off_cpu_median_s']:.4f} s, off/on {row['cpu_ratio']:.3f} (saves {row['cpu_saving']:.1%}); "
          f"{len(on)} turns each", flush=True)
    return row


def interleaved(repeats: int, run: Callable[[bool], tuple[float, float]]) -> tuple[list, list]:
    """`run(on)` taking turns on, off, on, off ... (one warm-up of each first); (wall, CPU) seconds per turn."""
    run(True)
    run(False)
    on, off = [], []
    for _ in range(repeats):
        on.append(run(True))
        off.append(run(False))
    return on, off


# ----------------------------------------------------------------------------------------------- measures


@contextlib.contextmanager
def canonical_match(enabled: bool) -> Iterator[None]:
    """Off: the parser's whole-answer match of the prompted format never matches, so every answer takes the
    general scan (which reads that format too)."""
    from open_r1.answer import parse

    saved = parse._CANONICAL_RE
    if not enabled:
        parse._CANONICAL_RE = re.compile(r"(?!)")
    try:
        yield
    finally:
        parse._CANONICAL_RE = saved


def measure_parse(repeats: int, n: int) -> None:
    from open_r1.answer import parse_answer
    from rewards import synthetic_batch

    texts, _ = synthetic_batch(n, 8)

    def run(on: bool) -> tuple[float, float]:
        with canonical_match(on), Clock() as clock:
            for text in texts:
                parse_answer(text)
        return clock.both

    with canonical_match(False):  # both paths must read the same answers for the timing to mean anything
        general = [parse_answer(t) for t in texts]
    differ = sum(a != b for a, b in zip(general, map(parse_answer, texts)))
    on, off = interleaved(repeats, run)
    record("parse", "parser canonical match", f"parse_answer over {n:,} synthetic completions (bench/rewards.py: 70% "
           "in the prompted format)", on, off, answers_differ=differ)


def demo_trainer(max_steps: int, callbacks: list):
    import yaml
    from transformers import AutoProcessor
    from trl import GRPOConfig, ModelConfig

    from open_r1.data import load_rows
    from open_r1.data.dataset import rows_to_dataset, with_images
    from open_r1.modeling.loading import load_model
    from open_r1.rewards import build_reward_funcs
    from open_r1.tiny_model import build_tiny_model
    from open_r1.training.grpo import build_grpo_trainer

    recipe = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())
    path = build_tiny_model(REPO / ".cache" / "tiny-qwen2.5-vl")
    rows = load_rows(str(REPO / recipe["data_file_paths"]), str(REPO / recipe["image_folders"]))
    # the same 4 prompts every step (3 of 1 photo, 1 of 4, as the demo's rows), so that steps differ by the path only
    rows = [r for r in rows if len(r.image_paths) == 1][:3] + [r for r in rows if len(r.image_paths) == 4][:1]
    keys = ("per_device_train_batch_size", "num_generations", "temperature", "min_p", "beta", "scale_rewards",
            "learning_rate", "reward_weights", "seed")
    out = tempfile.mkdtemp(prefix="clever-paths-")
    args = GRPOConfig(output_dir=out, report_to=[], use_cpu=True, bf16=False, save_strategy="no", logging_steps=1,
                      gradient_checkpointing=False, max_steps=max_steps,
                      # every completion DEMO_COMPLETION tokens long, about what the warm-started tiny model writes
                      # (its answer block); the random model's stopping would otherwise set the time
                      max_completion_length=DEMO_COMPLETION, generation_kwargs={"min_new_tokens": DEMO_COMPLETION},
                      **{k: recipe[k] for k in keys})
    trainer = build_grpo_trainer(
        load_model(ModelConfig(model_name_or_path=str(path))),
        AutoProcessor.from_pretrained(path),
        build_reward_funcs(recipe["reward_funcs"], {}),
        args,
        train_dataset=with_images(rows_to_dataset(rows, recipe["question_template"]), max_pixels=recipe["max_pixels"]),
    )
    for callback in callbacks:
        trainer.add_callback(callback)
    return trainer


DEMO_COMPLETION = 32
DEMO_TURNS = ("shared prefill on", "shared prefill off")


def measure_demo_step(repeats: int) -> None:
    """Steps of the demo recipe, the shared prefill on and off by turns after one warm-up step."""
    from transformers import TrainerCallback

    from open_r1.modeling.shared_prefill import share_prefill

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in DEMO_TURNS}
    holder: dict = {}

    class TakeTurns(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            step = state.global_step
            self.turn = DEMO_TURNS[0] if step == 0 else DEMO_TURNS[(step - 1) % len(DEMO_TURNS)]
            share_prefill(holder["trainer"].model, enabled=self.turn == DEMO_TURNS[0])
            self.start = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = time.perf_counter() - self.start[0], time.process_time() - self.start[1]
            if state.global_step > 1:
                times[self.turn].append(elapsed)
                print(f"  step {state.global_step}: {self.turn}: {elapsed[0]:.2f} s ({elapsed[1]:.2f} s CPU)",
                      flush=True)

    trainer = demo_trainer(1 + len(DEMO_TURNS) * repeats, [TakeTurns()])
    holder["trainer"] = trainer
    trainer.train()
    what = (f"GRPO step of data_config/demo.yaml on the tiny model (4 prompts, 3 of 1 photo and 1 of 4, the same every "
            f"step; 32 completions of {DEMO_COMPLETION} tokens; beta 0.2), taking turns step by step")
    record("demo_step", "shared prefill", what, *times.values())


def measure_prefill_real(repeats: int, generations: int, new_tokens: int, side: tuple[int, int]) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from open_r1.modeling.loading import ensure_left_padding
    from open_r1.modeling.shared_prefill import share_prefill

    if not (REAL_WIDTH / "model.safetensors").is_file():
        print(f"prefill_real: skipped, no {REAL_WIDTH} (bench/rehearse.py builds it)")
        return
    import yaml

    recipe = yaml.safe_load((REPO / "data_config" / "geo_r_3b.yaml").read_text())
    processor = ensure_left_padding(AutoProcessor.from_pretrained(REAL_WIDTH))
    processor.image_processor.max_pixels = recipe["max_pixels"]
    if hasattr(processor.image_processor, "size"):
        processor.image_processor.size = {"shortest_edge": recipe.get("min_pixels", 3136),
                                          "longest_edge": recipe["max_pixels"]}
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 255, (side[1], side[0], 3), dtype=np.uint8)) for _ in range(4)]
    content = [*({"type": "image", "image": p} for p in photos), {"type": "text", "text": "Where was this taken?"}]
    batch = processor.apply_chat_template([[{"role": "user", "content": content}]] * generations,
                                          add_generation_prompt=True, tokenize=True, return_dict=True,
                                          return_tensors="pt", padding=True)
    model = AutoModelForImageTextToText.from_pretrained(REAL_WIDTH, dtype=torch.bfloat16).eval()

    def run(on: bool) -> tuple[float, float]:
        share_prefill(model, enabled=on)
        torch.manual_seed(0)
        with torch.inference_mode(), Clock() as clock:
            model.generate(**batch, do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        print(f"  shared prefill {'on' if on else 'off'}: {clock.wall:.2f} s ({clock.cpu:.2f} s CPU)", flush=True)
        return clock.both

    on, off = interleaved(repeats, run)
    record("prefill_real", "shared prefill",
           f"generate {generations} x {new_tokens} tokens for one prompt of 4 {side[0]}x{side[1]} photos "
           f"({batch['input_ids'].shape[1]} prompt tokens), 3B widths, 2 LM layers and 2 vision blocks, bf16, "
           f"{torch.get_num_threads()} threads", on, off, prompt_tokens=int(batch["input_ids"].shape[1]))


# regions (lat range, lon range) where photos are taken; |lon| <= 90 in the first five, so no value gives a swap away
REGIONS = {
    "Europe": ((36, 60), (-9, 30)),
    "Africa": ((-34, 35), (-17, 50)),
    "South America": ((-40, 10), (-80, -35)),
    "India": ((8, 32), (68, 89)),
    "Middle East": ((12, 42), (26, 60)),
    "USA": ((26, 48), (-124, -70)),
    "Japan": ((31, 44), (130, 145)),
    "world": ((-60, 70), (-180, 180)),
}
TABLE_ROWS = (3, 20, 200)


def synthetic_tables(folder: Path, per_cell: int, seed: int = 0) -> list[tuple[Path, bool, str, int]]:
    """CSV tables of photos 0.5-20 km from GeoNames places in one region, half with the columns swapped:
    (path, swapped, region, rows)."""
    import numpy as np

    from open_r1.geo.geocode import _places

    table = _places()
    lat, lon = np.asarray(table.lat), np.asarray(table.lon)
    rng = random.Random(seed)
    tables = []
    for region, ((lat0, lat1), (lon0, lon1)) in REGIONS.items():
        inside = np.flatnonzero((lat >= lat0) & (lat <= lat1) & (lon >= lon0) & (lon <= lon1))
        for rows in TABLE_ROWS:
            for k in range(per_cell):
                swapped = k % 2 == 1
                path = folder / f"{region.replace(' ', '_')}-{rows}-{k}.csv"
                with open(path, "w", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["id", "lat", "lon"])
                    for i in range(rows):
                        j = int(inside[rng.randrange(len(inside))])
                        km, bearing = rng.uniform(0.5, 20), rng.uniform(0, 6.283)
                        a = float(lat[j]) + km / 111.2 * np.cos(bearing)
                        b = float(lon[j]) + km / (111.2 * max(np.cos(np.radians(lat[j])), 0.05)) * np.sin(bearing)
                        a, b = round(float(np.clip(a, -89.9, 89.9)), 5), round(float((b + 180) % 360 - 180), 5)
                        writer.writerow([i, b, a] if swapped else [i, a, b])
                tables.append((path, swapped, region, rows))
    return tables


def simple_rule(path: Path) -> bool:
    """Swapped when a value of the column named latitude lies beyond +-90, else as named."""
    with open(path, newline="") as handle:
        return any(abs(float(row["lat"])) > 90 for row in csv.DictReader(handle))


def measure_latlon(repeats: int, per_cell: int) -> None:
    from open_r1.data.convert.latlon import decide
    from open_r1.data.rows import DataError
    from open_r1.geo import nearest_places

    nearest_places([0.0], [0.0])  # the place table and its index, loaded once per process (not timed)
    with tempfile.TemporaryDirectory() as tmp:
        tables = synthetic_tables(Path(tmp), per_cell)
        verdicts: dict[str, list[bool | None]] = {}

        def detector(path: Path) -> bool | None:
            try:
                return decide(str(path), ["id", "lat", "lon"], "lat", "lon", ",", None).swap
            except DataError:
                return None  # it asks for --swap_latlon / --no_swap_latlon

        def run(on: bool) -> tuple[float, float]:
            rule = detector if on else simple_rule
            with Clock() as clock:
                verdicts["on" if on else "off"] = [rule(path) for path, *_ in tables]
            return clock.both

        on, off = interleaved(repeats, run)
    truth = [swapped for _, swapped, *_ in tables]

    def tally(found: list[bool | None], keep: Callable[[int], bool] = lambda i: True) -> dict:
        picked = [i for i in range(len(truth)) if keep(i)]
        right = sum(found[i] == truth[i] for i in picked)
        asked = sum(found[i] is None for i in picked)
        return {"tables": len(picked), "right": right, "asked": asked, "wrong": len(picked) - right - asked}

    per = {}
    for name, found in (("detector", verdicts["on"]), ("simple rule", verdicts["off"])):
        per[name] = {"all": tally(found)}
        for rows in TABLE_ROWS:
            per[name][f"{rows} rows"] = tally(found, lambda i, r=rows: tables[i][3] == r)
        for region in REGIONS:
            per[name][region] = tally(found, lambda i, g=region: tables[i][2] == g)
    for name, groups in per.items():
        print(f"latlon: {name}: " + "; ".join(f"{group} {t['right']}/{t['tables']} right, {t['wrong']} wrong, "
                                              f"{t['asked']} asked" for group, t in groups.items()))
    record("latlon", "lat/lon likelihood detector",
           f"decide the column order of {len(tables)} synthetic tables ({', '.join(map(str, TABLE_ROWS))} rows; "
           f"{len(REGIONS)} regions; half swapped) vs 'beyond +-90 means swapped'", on, off, accuracy=per)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=MEASURES, default=list(MEASURES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--generations", type=int, default=8, help="G of the real-width generation")
    parser.add_argument("--new_tokens", type=int, default=16, help="tokens generated per completion (real width)")
    parser.add_argument("--photo", default="640x480", help="size of the 4 photos (real width); 1024x768 passes 4 GB")
    parser.add_argument("--tables", type=int, default=4, help="tables per region and size (latlon)")
    parser.add_argument("--n", type=int, default=32768, help="completions per batch (parse)")
    args = parser.parse_args(argv)
    if "parse" in args.only:
        measure_parse(args.repeats, args.n)
    if "latlon" in args.only:
        measure_latlon(args.repeats, args.tables)
    if "demo_step" in args.only:
        measure_demo_step(args.repeats)
    if "prefill_real" in args.only:
        photo = tuple(int(v) for v in args.photo.split("x"))
        measure_prefill_real(args.repeats, args.generations, args.new_tokens, photo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
