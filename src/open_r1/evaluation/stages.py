"""Compare the stages of one recipe (base model, after SFT, after GRPO) on the same held-out split, and plot
how the GRPO run's reward and distance moved, so a run shows whether each stage helped.

    python -m open_r1.evaluation.stages output/stages        # reads output/stages/{base,sft,grpo}/eval
    python -m open_r1.evaluation.stages --stage sft=output/warm-start/eval --stage grpo=output/run/eval \
        --grpo_run output/run                                # named evaluation folders, curve from the run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from open_r1.cli import run_main
from open_r1.errors import ArgumentError
from open_r1.evaluation.metrics import accuracy_key

STAGES = ("base", "sft", "grpo")
COLUMNS = (
    ("parse rate %", lambda m: 100.0 - m["parse_failure_rate"]),
    ("median km", lambda m: m["median_km"]),
    ("acc@25km %", lambda m: m[accuracy_key(25)]),
    ("acc@750km %", lambda m: m[accuracy_key(750)]),
    ("GeoGuessr", lambda m: m["geoguessr"]),
)


def stage_metrics(run_dir: Path) -> dict[str, dict[str, Any]]:
    """metrics.json of every stage that has one, in recipe order."""
    found = {}
    for stage in STAGES:
        path = run_dir / stage / "eval" / "metrics.json"
        if path.is_file():
            found[stage] = json.loads(path.read_text())
    return found


def training_curve(trainer_state: Path) -> list[dict[str, float]]:
    """Per logged step of a GRPO run: step, mean reward and median distance (km) of its completions."""
    history = json.loads(trainer_state.read_text())["log_history"]
    return [
        {"step": h["step"], "reward": h["reward"], "median_km": h.get("geo/distance_km_median", float("nan"))}
        for h in history
        if "reward" in h
    ]


def latest_trainer_state(run: Path) -> Path | None:
    """trainer_state.json of the newest checkpoint of a run (the final one holds the whole history)."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return states[-1] if states else None


def plot_curve(curve: list[dict[str, float]], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=120)
    left, right = fig.subplots(1, 2)
    steps = [c["step"] for c in curve]
    left.plot(steps, [c["reward"] for c in curve], marker=".")
    left.set(xlabel="GRPO step", ylabel="mean reward", title="reward")
    right.plot(steps, [c["median_km"] for c in curve], marker=".", color="tab:red")
    right.set(xlabel="GRPO step", ylabel="km", title="median distance of completions", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def format_table(metrics: dict[str, dict[str, Any]]) -> str:
    header = f"{'stage':<6}" + "".join(f"{name:>14}" for name, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for stage, m in metrics.items():
        lines.append(f"{stage:<6}" + "".join(f"{get(m):>14.1f}" for _, get in COLUMNS))
    return "\n".join(lines)


def report(run_dir: Path | None = None, stages: dict[str, Path] | None = None, grpo_run: Path | None = None,
           png: Path | None = None) -> str:
    """The stage table and, when the GRPO run has logs, the reward curve PNG; returns the printed text.
    Either `run_dir` (with {base,sft,grpo}/eval inside) or `stages` (name -> evaluation folder) and `grpo_run`."""
    if stages is not None:
        metrics = {name: json.loads((folder / "metrics.json").read_text()) for name, folder in stages.items()
                   if (folder / "metrics.json").is_file()}
        where = ", ".join(str(folder) for folder in stages.values())
    else:
        metrics, where = stage_metrics(run_dir), f"{{{','.join(STAGES)}}}/eval under {run_dir}"
        grpo_run = grpo_run or run_dir / "grpo"
        png = png or run_dir / "grpo_curve.png"
    if not metrics:
        raise ArgumentError(f"no metrics.json in {where}")
    text = [f"held-out results ({next(iter(metrics.values()))['num_images']} images)", format_table(metrics)]
    state = latest_trainer_state(grpo_run) if grpo_run is not None else None
    if state is not None:
        curve = training_curve(state)
        if curve:
            path = plot_curve(curve, png or grpo_run / "grpo_curve.png")
            first, last = curve[: max(1, len(curve) // 4)], curve[-max(1, len(curve) // 4) :]
            mean = lambda part: sum(c["reward"] for c in part) / len(part)  # noqa: E731
            text.append(
                f"GRPO mean reward: {mean(first):.3f} over the first quarter of steps -> {mean(last):.3f} over "
                f"the last quarter ({len(curve)} steps); curve: {path}"
            )
    return "\n".join(text)


def _stage(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--stage takes NAME=EVAL_FOLDER, got {text!r}")
    return name, Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?", help="a folder with {base,sft,grpo}/eval inside")
    parser.add_argument("--stage", type=_stage, action="append", help="NAME=EVAL_FOLDER, in table order")
    parser.add_argument("--grpo_run", type=Path, help="the GRPO output folder, for the reward curve")
    parser.add_argument("--png", type=Path, help="where to write the curve (default: in the GRPO folder)")
    args = parser.parse_args()
    if (args.run_dir is None) == (args.stage is None):
        parser.error("give either RUN_DIR or --stage NAME=EVAL_FOLDER (one per stage)")
    print(report(args.run_dir, dict(args.stage) if args.stage else None, args.grpo_run, args.png))


if __name__ == "__main__":
    run_main(main)
