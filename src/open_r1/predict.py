"""Ask a geolocation model where photos were taken.

    python -m open_r1.predict --model_name_or_path output/run1 --images photo.jpg
    python -m open_r1.predict --model_name_or_path output/run1 --images n.jpg e.jpg s.jpg w.jpg   # one place
    python -m open_r1.predict --model_name_or_path output/run1 --images holiday/ --json            # each photo
    python -m open_r1.predict --model_name_or_path output/run1 --dataset_name data/my_hub_set --dataset_split "test[:20]"

Prints the model's reasoning, its coordinates, the place the offline geocoder finds there and a short
summary (or, with --json, the same as a JSON list). The model is loaded and prompted exactly as in
`open_r1.eval_geo`. With `--tools zoom lookup` the model may call tools first: the episode is printed turn by
turn (each call, each result) and saved, zoom crops included, under `--episode_dir`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from trl import TrlParser

from open_r1.cli import parse, run_main
from open_r1.configs import ModelArguments, PredictArguments, SamplingArguments
from open_r1.data.hub import read_rows
from open_r1.data.images import IMAGE_SUFFIXES
from open_r1.errors import ArgumentError
from open_r1.evaluation.describe import as_text, describe
from open_r1.evaluation.episodes import Episode, ToolEpisodeGenerator, episode_turns, save_episode
from open_r1.evaluation.generation import Sampling, geo_messages, with_images
from open_r1.evaluation.harness import build_generator, tools_from
from open_r1.modeling.prompt_record import trained_question_template

DEFAULT_EPISODE_DIR = Path(".cache/predict/episodes")


def image_groups(paths: list[str]) -> list[list[str]]:
    """One folder: each image in it alone (sorted). Otherwise: all the files are views of one place."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        files = sorted(str(p) for p in Path(paths[0]).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ArgumentError(f"--images {paths[0]}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        return [[f] for f in files]
    for path in paths:
        if Path(path).is_dir():
            raise ArgumentError(f"--images {path}: a folder among several paths; give one folder, or image files of "
                                "one place")
        if not Path(path).is_file():
            raise ArgumentError(f"--images {path}: image not found")
    return [list(paths)]


def episode_text(episode: Episode, saved: Path) -> str:
    """The episode turn by turn: the model's text and calls, each tool's result (an image as its size)."""
    lines = [f"  {text}" for text, _ in episode_turns(episode)]
    lines.append(f"  ({episode.calls} tool call(s); episode and crops saved in {saved})")
    return "\n".join(lines)


def main(args: PredictArguments, model_args: ModelArguments, sampling_args: SamplingArguments) -> list[dict]:
    groups = [row.image_paths for row in read_rows(args)] if args.dataset_name else image_groups(args.images)
    args.question_template = trained_question_template(args.question_template, model_args.model_name_or_path)
    sampling = Sampling(sampling_args.max_new_tokens, sampling_args.temperature or 0.0, sampling_args.top_p, 1,
                        sampling_args.seed)
    generator = build_generator(model_args, sampling, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                                max_images=max(len(g) for g in groups), work_dir=Path(".cache/predict"),
                                toolset=tools_from(args), max_tool_rounds=args.max_tool_rounds)
    episode_dir = Path(args.episode_dir) if args.episode_dir else DEFAULT_EPISODE_DIR
    predictions = []
    for start in range(0, len(groups), sampling_args.batch_size):
        batch = groups[start:start + sampling_args.batch_size]
        conversations = [with_images(geo_messages(args.question, args.question_template), group, args.max_pixels,
                                     where=group[0]) for group in batch]
        if isinstance(generator, ToolEpisodeGenerator):
            generator.with_rows([{"image_paths": group} for group in batch])
        outputs = generator(conversations)
        episodes = generator.episodes if isinstance(generator, ToolEpisodeGenerator) else [None] * len(batch)
        for group, completions, episode in zip(batch, outputs, episodes):
            prediction = describe(completions[0], group)
            if episode is not None:
                saved = save_episode(episode, episode_dir, Path(group[0]).stem)
                prediction["tool_calls"] = episode.calls
                prediction["episode"] = str(saved)
            predictions.append(prediction)
            if not args.json:
                if episode is not None:
                    print(f"episode for {', '.join(group)}:\n{episode_text(episode, saved)}")
                print(as_text(prediction), end="\n\n", flush=True)
    if args.json:
        print(json.dumps(predictions, ensure_ascii=False, indent=2))
    return predictions


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    run_main(lambda: main(*parse(TrlParser((PredictArguments, ModelArguments, SamplingArguments)))))
