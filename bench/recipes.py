"""Which training recipes help on the embedded demo? Runs the main command on the embedded default
(`run_scripts/run_grpo_rec.sh`: SFT warm start -> GRPO -> held-out evaluation) per seed for the baseline recipe (data_config/demo.yaml) and for each option on top
of it, and prints the held-out accuracy at 25 km and GeoGuessr score of every GRPO model, per seed and averaged:

    baseline           data_config/demo.yaml as it is
    reward_schedule    haversine added to the rewards, --reward_weight_schedules hierarchy=1.0:0.25 haversine=0.25:1.0
                       (names first, coordinates later)
    balanced           --balance_by country --balance_alpha 0.5
    hard_filter        GRPO on the rows the SFT model does not already place (python -m open_r1.difficulty, k=4,
                       --drop_solved --hotspot_km 25)
    <variant>          each overlay of data_config/grpo_variants/ (dr_grpo, dapo, gspo, normalize_then_sum)

The SFT warm start is trained once per seed and reused by every config of that seed. Each
config costs one GRPO run and one evaluation (minutes on a CPU; the full table takes hours).

    .venv/bin/python bench/recipes.py                                   # every config, seeds 42 7 1234
    .venv/bin/python bench/recipes.py --configs baseline balanced --seeds 42
    GRPO_STEPS=2 SFT_STEPS=5 .venv/bin/python bench/recipes.py --configs balanced --seeds 42   # a smoke run

"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
VARIANTS = REPO / "data_config" / "grpo_variants"
TRAIN, IMAGES = REPO / "data" / "demo" / "train.jsonl", REPO / "data" / "demo" / "images"


def overlay_flags(path: Path) -> list[str]:
    """A variant recipe's keys as command-line flags (its model line left out)."""
    flags = []
    for key, value in yaml.safe_load(path.read_text()).items():
        if key != "model_name_or_path":
            flags += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def configs() -> dict[str, list[str]]:
    found = {
        "baseline": [],
        # the baseline pays names only; the curriculum adds kilometres, weighted in as the names' weight goes down
        "reward_schedule": ["--reward_funcs", "format", "hierarchy", "haversine", "--reward_weights", "0.5", "1.0", "0.25",
                            "--reward_weight_schedules", "hierarchy=1.0:0.25:linear", "haversine=0.25:1.0:linear"],
        "balanced": ["--balance_by", "country", "--balance_alpha", "0.5"],
        "hard_filter": [],  # its data file is written per seed, see `hard_rows`
    }
    found.update({path.stem: overlay_flags(path) for path in sorted(VARIANTS.glob("*.yaml"))})
    return found


def run(cmd: list[str], env: dict, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        result = subprocess.run(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{log.read_text()[-3000:]}")


def hard_rows(sft: Path, out: Path, env: dict) -> Path:
    """The training rows the SFT model does not already place (k=4 answers at the demo's GRPO temperature)."""
    scored = out / "hard.jsonl"
    run([sys.executable, "-m", "open_r1.difficulty", "--model_name_or_path", str(sft), "--data_file_paths",
         str(TRAIN), "--image_folders", str(IMAGES), "--output_dir", str(out / "difficulty"), "--num_guesses", "4",
         "--temperature", "0.5", "--max_new_tokens", os.environ.get("EVAL_TOKENS", "160"), "--batch_size", "16",
         "--question_template", "{question}",  # the demo recipes' prompt: the model knows no other
         "--drop_solved", "--hotspot_km", "25", "--out", str(scored), "--overwrite"], env, out / "difficulty.log")
    return scored


def run_config(name: str, flags: list[str], seed: int, root: Path) -> dict:
    out = root / f"seed{seed}" / name
    sft = root / f"seed{seed}" / "sft"
    env = dict(os.environ, OUTPUT_DIR=str(out / "grpo"), WARM_START_DIR=str(sft), SEED=str(seed), REPORT_TO="none",
               CUDA_VISIBLE_DEVICES="")
    env.pop("MODEL", None)
    if os.environ.get("SFT_STEPS"):
        env["SFT_FLAGS"] = f"--max_steps {os.environ['SFT_STEPS']} --save_steps {os.environ['SFT_STEPS']}"
    steps = os.environ.get("GRPO_STEPS")
    flags = [*flags, *(["--max_steps", steps, "--save_steps", steps] if steps else [])]
    if name == "hard_filter":
        if not (sft / "config.json").is_file():
            run_config("baseline", [], seed, root)
        flags = [*flags, "--data_file_paths", str(hard_rows(sft, out, env))]
    run(["bash", "run_scripts/run_grpo_rec.sh", *flags], env, out / "console.log")
    return json.loads((out / "grpo" / "eval" / "metrics.json").read_text())


def main() -> None:
    known = configs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--configs", nargs="+", default=list(known), choices=list(known))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1234])
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench-recipes")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; GRPO_STEPS="
          f"{os.environ.get('GRPO_STEPS', 'recipe')} SFT_STEPS={os.environ.get('SFT_STEPS', 'recipe')}")
    results: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:
        for name in args.configs:
            results.setdefault(name, {})[seed] = metrics = run_config(name, known[name], seed, args.out)
            print(f"{name} seed {seed}: acc@25km {metrics['acc@25km']:.1f}%  GeoGuessr {metrics['geoguessr']:.0f}",
                  flush=True)
    seeds = "  ".join(f"{'seed ' + str(s):>16}" for s in args.seeds)
    print(f"\n{'config':<20}{seeds}  {'mean @25km %':>13}{'mean GeoGuessr':>16}")
    for name, by_seed in results.items():
        cells = "  ".join(f"{by_seed[s]['acc@25km']:>7.1f} {by_seed[s]['geoguessr']:>8.0f}" for s in args.seeds)
        acc = statistics.mean(by_seed[s]["acc@25km"] for s in args.seeds)
        points = statistics.mean(by_seed[s]["geoguessr"] for s in args.seeds)
        print(f"{name:<20}{cells}  {acc:>13.1f}{points:>16.0f}")


if __name__ == "__main__":
    main()
