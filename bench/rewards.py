"""Throughput of the geo reward suite (format + haversine + hierarchy + geohash) on synthetic completions.

    python bench/rewards.py [--n 65536] [--generations 8] [--repeats 3]

The completions imitate a GRPO step: n / generations labelled rows, each answered `generations` times in
the forms models write (mostly the prompted format, some JSON, hemisphere/DMS and bare pairs, some hedged or
unanswered), with reasoning of varied length and guesses from metres to continents away. Every text is
unique, so no per-text cache can make the run look faster than a real step. The reference is a plain numpy
haversine over the same coordinate pairs. Timings include everything a trainer step pays except the one-off
loading of the place table. The suite's time runs from the first reward's call to the last one's return plus
a young-generation collection of what they left. Place names are normalised once per process (the model and the
labels repeat them from step to step), so the first step, which meets every name for the first time, is
printed too.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time

import numpy as np

from open_r1.answer import parse_answer, render_answer, wrap
from open_r1.geo import country_name, reverse_geocode
from open_r1.geo.geocode import _places
from open_r1.rewards import batch as batch_module
from open_r1.rewards import build_reward_funcs

SUITE = ["format", "haversine", "hierarchy", "geohash"]
CLUES = (
    "the road markings are white and dashed", "the cars drive on the right", "the script on the shop signs",
    "bollards with a red reflector", "a tiled roof and whitewashed walls", "dense tropical vegetation",
    "snow on distant mountains", "a dry steppe with sparse shrubs", "utility poles with many crossbars",
    "a yellow licence plate", "palm trees along a wide avenue", "the sun is high in the north",
    "brick terraced houses", "a church with an onion dome", "rice paddies beside the road",
)


def _offset(lat: float, lon: float, km: float, rng: random.Random) -> tuple[float, float]:
    """A point about `km` away in a random direction (flat approximation, clamped to valid ranges)."""
    bearing = rng.uniform(0, 2 * np.pi)
    dlat = km / 111.2 * np.cos(bearing)
    dlon = km / (111.2 * max(np.cos(np.radians(lat)), 0.05)) * np.sin(bearing)
    return float(np.clip(lat + dlat, -89.9, 89.9)), float((lon + dlon + 180) % 360 - 180)


def _answer_body(form: str, lat: float, lon: float, names: tuple, rng: random.Random) -> str:
    country, region, city = names
    if form == "json":
        return f'{{"country": "{country}", "city": "{city}", "lat": {lat:.5f}, "lon": {lon:.5f}}}'
    if form == "hemisphere":
        ns, ew = "N" if lat >= 0 else "S", "E" if lon >= 0 else "W"
        return f"{city}, {country}: {abs(lat):.4f}°{ns} {abs(lon):.4f}°{ew}"
    if form == "bare":
        return f"I would place it at ({lat:.4f}, {lon:.4f})."
    if form == "hedge":
        other = _offset(lat, lon, rng.uniform(50, 2000), rng)
        return f"Latitude: {lat:.4f}\nLongitude: {lon:.4f}\nor maybe ({other[0]:.4f}, {other[1]:.4f})"
    return render_answer(lat, lon, country, region, city)


def synthetic_batch(n: int, generations: int, seed: int = 0) -> tuple[list[str], dict[str, list]]:
    rng = random.Random(seed)
    table = _places()
    rows = rng.sample(range(len(table.lat)), n // generations)
    truth = [(float(table.lat[i]), float(table.lon[i]), table.country[i], table.region[i], table.city[i]) for i in rows]
    guesses = []
    for t_lat, t_lon, *_ in truth:
        for _ in range(generations):
            km = 10 ** rng.uniform(-1, 3.7)  # 0.1 km to 5000 km
            guesses.append(_offset(t_lat, t_lon, km, rng))
    places = reverse_geocode([g[0] for g in guesses], [g[1] for g in guesses])
    completions, columns = [], {"lat": [], "lon": [], "country": [], "region": [], "city": []}
    forms = ["canonical"] * 70 + ["json"] * 10 + ["hemisphere"] * 6 + ["bare"] * 5 + ["hedge"] * 4 + ["none"] * 5
    for k, ((lat, lon), place) in enumerate(zip(guesses, places)):
        t_lat, t_lon, t_cc, t_region, t_city = truth[k // generations]
        labelled = (k // generations) % 2 == 0  # half the rows carry names, half only coordinates
        columns["lat"].append(t_lat)
        columns["lon"].append(t_lon)
        columns["country"].append(t_cc if labelled else None)
        columns["region"].append(t_region if labelled else None)
        columns["city"].append(t_city if labelled else None)
        names = (country_name(place.country) or place.country, place.region, place.city)
        clues = ", ".join(rng.sample(CLUES, rng.randint(2, 8)))
        think = (f"I see {clues}. " * rng.randint(1, 4)
                 + f"So the country is {names[0]}, the region {names[1]}, the city {names[2]}.")
        form = rng.choice(forms)
        if form == "none":
            completions.append(f"<think>{think} I cannot tell more. ({k})</think>")
        else:
            completions.append(wrap(think, _answer_body(form, lat, lon, names, rng)))
    assert len(set(completions)) == len(completions), "synthetic completions must be unique"
    return completions, columns


def hostile_answers(size: int = 4096) -> list[str]:
    """Answer bodies built to make a backtracking parser slow: padded keys, separators and repeated pairs."""
    pad = " " * size
    bodies = [
        "Latitude:" + pad + "x 1", "Latitude: \"" + pad + "x 1", "lat/lon:" + pad + "1 " + pad, "38.5 N" + pad + "x1",
        "38.5 N," + pad + "x1", "(" + pad + "1", "Country:" + pad + "x\nLatitude: 1\nLongitude: 2x",
        "38°" + "1'" * size, "(1, " * size, "[1.0, " * size, "latitude " + "of " * size + "1", "1" * size,
        "Latitude: 38.72, " * size, "deg[12.5" * size,
    ]
    return [f"<answer>{body[:size]}</answer>" for body in bodies]


def _reset_caches() -> None:
    batch_module._last = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    _places()
    print(f"place table loaded once per process in {time.perf_counter() - t0:.2f} s")
    completions, columns = synthetic_batch(args.n, args.generations)
    funcs = build_reward_funcs(SUITE, {})
    kwargs = dict(columns, trainer_state=None, log_metric=lambda name, value: None)

    best: dict[str, float] = {}
    best_cpu = np.inf
    suite_times: list[float] = []
    for _ in range(args.repeats):
        _reset_caches()
        batch = list(completions)  # a fresh list, as each trainer step brings
        gc.collect()
        cpu, suite_start = time.process_time(), time.perf_counter()
        for func in funcs:
            start = time.perf_counter()
            func(None, batch, **kwargs)
            best[func.__name__] = min(best.get(func.__name__, np.inf), time.perf_counter() - start)
        gc.collect(0)  # the collection of what the rewards left is part of their cost
        suite_times.append(time.perf_counter() - suite_start)
        best["suite"] = min(best.get("suite", np.inf), suite_times[-1])
        best_cpu = min(best_cpu, time.process_time() - cpu)

    lat, lon = np.array(columns["lat"]), np.array(columns["lon"])
    p_lat, p_lon = np.roll(lat, 1), np.roll(lon, 1)
    numpy_best = np.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        phi1, phi2 = np.radians(p_lat), np.radians(lat)
        h = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lon - p_lon) / 2) ** 2
        _ = 2 * 6371.0088 * np.arcsin(np.sqrt(h))
        numpy_best = min(numpy_best, time.perf_counter() - start)

    hostile, rejected = [], 0
    for text in hostile_answers():
        _reset_caches()
        start = time.perf_counter()
        rejected += parse_answer(text) is None
        hostile.append(time.perf_counter() - start)

    n = len(completions)
    print(f"{n} unique completions, mean {np.mean([len(c) for c in completions]):.0f} chars")
    for name in [f.__name__ for f in funcs]:
        first = name == funcs[0].__name__
        note = "  (includes the one parse of every completion that all rewards share)" if first else ""
        print(f"  {name:10s} {best[name] * 1e3:8.1f} ms{note}")
    print(f"geo suite ({' + '.join(SUITE)}): {best['suite']:.3f} s = {n / best['suite']:,.0f} completions/s, "
          f"best of {args.repeats} steps (process CPU time {best_cpu:.3f} s; the machine's load average was "
          f"{os.getloadavg()[0]:.1f})")
    print(f"  first step {suite_times[0]:.3f} s: every place name is new to the process and is normalised once "
          f"(cached for later steps, as a training run's names repeat)")
    print(f"{len(hostile)} hostile 4 KB answers: slowest parse {max(hostile) * 1e3:.2f} ms, {rejected} rejected")
    print(f"plain numpy haversine on the same pairs: {numpy_best * 1e3:.2f} ms = {n / numpy_best:,.0f} pairs/s")


if __name__ == "__main__":
    main()
