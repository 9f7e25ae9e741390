"""Does zooming pay? The main command on the zoom variant of the demo (`data/demo/generate.py --zoom`: only a
small sign, unreadable at the default 112 pixels, tells the city), per seed, with and without the zoom tool:

    no_tools    SFT warm start (Chain-of-Region targets) -> GRPO (format, hierarchy) -> held-out evaluation
    zoom        SFT warm start whose targets zoom on the row's clue_box (--tools zoom) -> GRPO with --tools zoom
                (format, hierarchy, tool_use) -> held-out evaluation that runs the zoom tool too

Prints the held-out acc@25 km and GeoGuessr score of each SFT and GRPO model, and the zoom calls per image.
Each arm is one `run_scripts/run_grpo_rec.sh` launch on the embedded default (tiny Qwen2.5-VL, 2 CPU processes).
On 2 idle CPU cores a seed takes about 29 minutes: 5 without tools and 23 with zoom (three times the SFT steps,
and GRPO episodes of two turns). Each
finished (arm, seed) is appended to --results (bench/results/tools_demo.jsonl, kept in the repository) and not
run again unless --rerun.

    .venv/bin/python bench/tools_demo.py                          # seeds 42 7 1234
    .venv/bin/python bench/tools_demo.py --arms zoom --seeds 42
    GRPO_STEPS=2 SFT_STEPS=5 .venv/bin/python bench/tools_demo.py --seeds 42   # a smoke run (not recorded)
    .venv/bin/python bench/tools_demo.py --table_only [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from recorded import (
    DEMO_RECIPE,
    add_recording_arguments,
    describe_machine,
    read_recorded,
    recipe_fingerprint,
    record,
    shortened_run,
)

REPO = Path(__file__).resolve().parent.parent
DEMO_EVAL_FLAGS = "--max_new_tokens 160 --batch_size 32 --question_template {question}"  # as run_grpo_rec.sh
ARMS = {
    "no_tools": {"sft": "", "grpo": [], "eval": ""},
    # Two assistant turns around a crop take longer to learn than one: at 250 steps the answer after the crop
    # still garbles the digits (held-out parse 55%), so the zoom arm's warm start runs 750.
    "zoom": {"sft": "--tools zoom --max_steps 750",
             "grpo": ["--tools", "zoom", "--reward_funcs", "format", "hierarchy", "tool_use",
                      "--reward_weights", "0.5", "1.0", "0.5", "--max_tool_calling_iterations", "1",
                      "--max_completion_length", "320"],  # TRL counts the call, the tool result and the answer
             "eval": "--tools zoom --max_tool_rounds 1"},
}


def ensure_data(data: Path) -> None:
    if not (data / "test.jsonl").is_file():
        subprocess.run([sys.executable, str(REPO / "data" / "demo" / "generate.py"), "--zoom", "--out", str(data)],
                       check=True)


def run_arm(arm: str, seed: int, root: Path, data: Path) -> dict:
    out = root / f"seed{seed}" / arm
    settings = ARMS[arm]
    env = dict(os.environ, OUTPUT_DIR=str(out / "grpo"), WARM_START_DIR=str(out / "sft"), SEED=str(seed),
               REPORT_TO="none", CUDA_VISIBLE_DEVICES="", DATA_PATHS=str(data / "train.jsonl"),
               IMAGE_FOLDERS=str(data / "images"), EVAL_DATA=str(data / "test.jsonl"),
               EVAL_IMAGES=str(data / "images"), EVAL_FLAGS=f"{DEMO_EVAL_FLAGS} {settings['eval']}".strip())
    env.pop("MODEL", None)
    sft_flags = settings["sft"]
    if os.environ.get("SFT_STEPS"):
        sft_flags += f" --max_steps {os.environ['SFT_STEPS']} --save_steps {os.environ['SFT_STEPS']}"
    env["SFT_FLAGS"] = sft_flags.strip()
    steps = os.environ.get("GRPO_STEPS")
    flags = [*settings["grpo"], *(["--max_steps", steps, "--save_steps", steps] if steps else [])]
    log = out / "console.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        result = subprocess.run(["bash", "run_scripts/run_grpo_rec.sh", *flags], cwd=REPO, env=env,
                                stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"{arm} seed {seed} failed:\n{log.read_text()[-3000:]}")
    figures = {stage: json.loads((out / where / "eval" / "metrics.json").read_text())
               for stage, where in (("sft", "sft"), ("grpo", "grpo"))}
    return {"arm": arm, "seed": seed, "sft_acc@25km": figures["sft"]["acc@25km"],
            "sft_geoguessr": figures["sft"]["geoguessr"], "grpo_acc@25km": figures["grpo"]["acc@25km"],
            "grpo_geoguessr": figures["grpo"]["geoguessr"],
            "zooms_per_image": figures["grpo"].get("tool_calls_per_image")}


def print_row(entry: dict) -> None:
    calls = entry["zooms_per_image"]
    print(f"{entry['seed']:>6} {entry['arm']:<10}{entry['sft_acc@25km']:>13.1f}{entry['sft_geoguessr']:>15.0f}"
          f"{entry['grpo_acc@25km']:>14.1f}{entry['grpo_geoguessr']:>16.0f}"
          f"{'-' if calls is None else f'{calls:.2f}':>13}", flush=True)


def print_markdown(recorded: dict[tuple, dict], seeds: list[int], arms: list[str]) -> None:
    """The README's table, then how many seeds show GRPO with zoom ahead of GRPO without tools at 25 km."""
    print("| seed | arm | SFT acc@25 km / GeoGuessr | GRPO acc@25 km / GeoGuessr | zooms per photo |")
    print("| --- | --- | --- | --- | --- |")
    for seed in seeds:
        for arm in arms:
            if (entry := recorded.get((arm, seed))) is not None:
                calls = entry["zooms_per_image"]
                print(f"| {seed} | {arm.replace('_', ' ')} | {entry['sft_acc@25km']:.1f}% / {entry['sft_geoguessr']:,.0f} "
                      f"| {entry['grpo_acc@25km']:.1f}% / {entry['grpo_geoguessr']:,.0f} "
                      f"| {'-' if calls is None else f'{calls:.2f}'} |")
    pairs = [(z, n) for s in seeds if (z := recorded.get(("zoom", s))) and (n := recorded.get(("no_tools", s)))]
    ahead = sum(z["grpo_acc@25km"] > n["grpo_acc@25km"] for z, n in pairs)
    print(f"\nGRPO with zoom beats GRPO without tools on held-out acc@25 km on {ahead} of {len(pairs)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench-tools")
    add_recording_arguments(parser, REPO / "bench" / "results" / "tools_demo.jsonl")
    parser.add_argument("--markdown", action="store_true", help="print the recorded table as Markdown (the README's)")
    args = parser.parse_args()
    shortened = shortened_run()
    recipe = recipe_fingerprint((*DEMO_RECIPE, "data/demo/generate.py"))  # the zoom demo's data is generated
    recorded = {} if shortened else read_recorded(args.results, ("arm", "seed"), recipe)
    if args.table_only and not recorded:
        print(f"no run recorded for the current demo recipe ({recipe}): `python bench/tools_demo.py` records them")
        return
    if args.markdown and args.table_only:
        print_markdown(recorded, args.seeds, args.arms)
        return
    if not args.table_only:
        ensure_data(args.out / "data")
        print(describe_machine())
    print(f"{'seed':>6} {'arm':<10}{'SFT @25km %':>13}{'SFT GeoGuessr':>15}{'GRPO @25km %':>14}"
          f"{'GRPO GeoGuessr':>16}{'zooms/image':>13}", flush=True)
    for seed in args.seeds:
        for arm in args.arms:
            entry = recorded.get((arm, seed))
            if not args.table_only and (entry is None or args.rerun):
                entry = run_arm(arm, seed, args.out, args.out / "data")
                if not shortened:
                    record(args.results, entry, recipe)
            if entry is not None:
                print_row(entry)

if __name__ == "__main__":
    main()
