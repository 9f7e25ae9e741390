"""Does the embedded demo learn? Runs the README's demo pipeline (`run_scripts/run_demo.sh`: base eval -> SFT ->
GRPO -> eval) once per seed and prints, per seed and stage, the held-out parse rate, median error, accuracy at
25/750 km and GeoGuessr score, GRPO's mean reward over its first and last quarter of steps, the wall time, and
which of the demo's targets hold:

- after SFT, at least 90% of held-out answers parse;
- GRPO at least halves the held-out median error of the SFT model;
- GRPO's mean reward rises from the first to the last quarter of its steps;
- the whole pipeline takes under 10 minutes.

    .venv/bin/python bench/learning.py                      # seeds 42 7 1234, output under output/bench-learning
    .venv/bin/python bench/learning.py --seeds 42 --out /tmp/learning
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("base", "sft", "grpo")
TIME_LIMIT_S = 600


def run_seed(seed: int, out: Path) -> dict:
    env = dict(os.environ, OUTPUT_ROOT=str(out), SEED=str(seed))
    start = time.perf_counter()
    result = subprocess.run(["bash", "run_scripts/run_demo.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"seed {seed}: the demo failed\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    metrics = {stage: json.loads((out / stage / "eval" / "metrics.json").read_text()) for stage in STAGES}
    state = sorted((out / "grpo").glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))
    rewards = [h["reward"] for h in json.loads(state[-1].read_text())["log_history"] if "reward" in h]
    quarter = max(1, len(rewards) // 4)
    return {
        "seed": seed,
        "seconds": seconds,
        "metrics": metrics,
        "reward_first": sum(rewards[:quarter]) / quarter,
        "reward_last": sum(rewards[-quarter:]) / quarter,
    }


def targets(run: dict) -> dict[str, bool]:
    sft, grpo = run["metrics"]["sft"], run["metrics"]["grpo"]
    return {
        "SFT parse >= 90%": 100 - sft["parse_failure_rate"] >= 90,
        "GRPO median <= SFT / 2": grpo["median_km"] <= sft["median_km"] / 2,
        "reward rises": run["reward_last"] > run["reward_first"],
        "under 10 min": run["seconds"] < TIME_LIMIT_S,
    }


def print_run(run: dict) -> None:
    print(f"seed {run['seed']}: {run['seconds']:.0f} s; GRPO mean reward {run['reward_first']:.3f} (first quarter) "
          f"-> {run['reward_last']:.3f} (last quarter)")
    print(f"  {'stage':<6}{'parse %':>9}{'median km':>11}{'@25km %':>9}{'@750km %':>10}{'GeoGuessr':>11}"
          f"{'country %':>11}{'city %':>8}")
    for stage, m in run["metrics"].items():
        print(f"  {stage:<6}{100 - m['parse_failure_rate']:>9.1f}{m['median_km']:>11.0f}{m['acc@25km']:>9.1f}"
              f"{m['acc@750km']:>10.1f}{m['geoguessr']:>11.0f}{m['country_acc']:>11.1f}{m['city_acc']:>8.1f}")
    print("  targets: " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in targets(run).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1234])
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench-learning")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(seed, args.out / f"seed{seed}"))
        print_run(runs[-1])
    held = [all(targets(run).values()) for run in runs]
    print(f"all targets hold for {sum(held)} of {len(runs)} seeds")


if __name__ == "__main__":
    main()
