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
config costs one GRPO run and one evaluation (about 2 minutes on 2 idle CPU cores; a seed about 25). Each finished
(config, seed) is appended to --results (bench/results/recipes.jsonl, kept in the repository) and is not run
again unless --rerun: the table grows over several sittings and the README's table is that file's.

    .venv/bin/python bench/recipes.py                                   # every config, seeds 42 7 1234
    .venv/bin/python bench/recipes.py --configs baseline balanced --seeds 42
    .venv/bin/python bench/recipes.py --table_only                     # the table of what is recorded
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

from recorded import (
    add_recording_arguments,
    describe_machine,
    read_recorded,
    recipe_fingerprint,
    record,
    shortened_run,
)

REPO = Path(__file__).resolve().parent.parent
VARIANTS = REPO / "data_config" / "grpo_variants"
GRPO_ROWS, IMAGES = REPO / "data" / "demo" / "grpo.jsonl", REPO / "data" / "demo" / "images"  # what demo GRPO trains on


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
    """The GRPO rows the SFT model does not already place (k=4 answers at the demo's GRPO temperature)."""
    scored = out / "hard.jsonl"
    run([sys.executable, "-m", "open_r1.difficulty", "--model_name_or_path", str(sft), "--data_file_paths",
         str(GRPO_ROWS), "--image_folders", str(IMAGES), "--output_dir", str(out / "difficulty"), "--num_guesses", "4",
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
        hard = hard_rows(sft, out, env)
        kept = sum(1 for line in hard.read_text().splitlines() if line.strip())
        if not kept:  # every city has a photo the SFT model places k/k: nothing left to train on
            return dict.fromkeys(KEPT) | {"rows": 0}
        flags = [*flags, "--data_file_paths", str(hard)]
    run(["bash", "run_scripts/run_grpo_rec.sh", *flags], env, out / "console.log")
    metrics = json.loads((out / "grpo" / "eval" / "metrics.json").read_text())
    return metrics | ({"rows": kept} if name == "hard_filter" else {})


KEPT = ("acc@25km", "geoguessr", "median_km", "parse_failure_rate")
SFT_START = "sft_start"  # the table's first row: the SFT warm start, evaluated


def cell(entry: dict | None, form: str) -> str:
    """One table cell: acc@25 km and GeoGuessr, '-' when not run, 'no rows left' when a filter left none."""
    if entry is None:
        return "-"
    if entry.get("rows") == 0:
        return "no rows left"
    return form.format(entry["acc@25km"], entry["geoguessr"])


def print_table(results: dict[tuple[str, int], dict], names: list[str], seeds: list[int], markdown: bool = False) -> None:
    """Config by seed (acc@25 km %, GeoGuessr), and the means where every seed has figures."""
    def mean(name: str, form: str) -> str:
        have = [e for s in seeds if (e := results.get((name, s))) and e.get("acc@25km") is not None]
        if len(have) < len(seeds):
            return "-"
        return form.format(statistics.mean(e["acc@25km"] for e in have), statistics.mean(e["geoguessr"] for e in have))

    if markdown:
        print("| config | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
        print("| --- |" + " --- |" * (len(seeds) + 1))
        for name in names:
            cells = [cell(results.get((name, s)), "{:.1f} / {:,.0f}") for s in seeds]
            print(f"| {name} | " + " | ".join(cells) + f" | {mean(name, '{:.1f} / {:,.0f}')} |")
        return
    header = "  ".join(f"{'seed ' + str(s):>16}" for s in seeds)
    print(f"\n{'config':<20}{header}  {'mean @25km %, GeoGuessr':>24}")
    for name in names:
        cells = [f"{cell(results.get((name, s)), '{:>7.1f} {:>8.0f}'):>16}" for s in seeds]
        print(f"{name:<20}{'  '.join(cells)}  {mean(name, '{:>13.1f} {:>10.0f}'):>24}")


def main() -> None:
    known = configs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--configs", nargs="+", default=list(known), choices=list(known))
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench-recipes")
    add_recording_arguments(parser, REPO / "bench" / "results" / "recipes.jsonl")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    args = parser.parse_args()
    shortened = shortened_run()
    recipe = recipe_fingerprint()  # figures recorded under another recipe are not this recipe's
    results = {} if shortened else read_recorded(args.results, ("config", "seed"), recipe)
    if not args.table_only:
        print(describe_machine())
        for seed in args.seeds:
            for name in args.configs:
                if (name, seed) in results and not args.rerun:
                    continue
                metrics = run_config(name, known[name], seed, args.out)
                results[name, seed] = {key: metrics[key] for key in (*KEPT, "rows") if key in metrics}
                if not shortened:
                    record(args.results, {"config": name, "seed": seed, **results[name, seed]}, recipe)
                print(f"{name} seed {seed}: {cell(results[name, seed], 'acc@25km {:.1f}%  GeoGuessr {:.0f}')}", flush=True)
                start = args.out / f"seed{seed}" / "sft" / "eval" / "metrics.json"
                if (SFT_START, seed) not in results and start.is_file():  # the warm start every config began from
                    metrics = json.loads(start.read_text())
                    results[SFT_START, seed] = {key: metrics[key] for key in KEPT}
                    if not shortened:
                        record(args.results, {"config": SFT_START, "seed": seed, **results[SFT_START, seed]}, recipe)
    if not results:
        print(f"no run recorded for the current demo recipe ({recipe}): `python bench/recipes.py` records them")
        return
    print_table(results, [SFT_START, *args.configs], args.seeds, args.markdown)


if __name__ == "__main__":
    main()
