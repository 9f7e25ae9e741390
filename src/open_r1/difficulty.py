"""Score how hard each training row is for a model, and write the hard-sample training file.

    python -m open_r1.difficulty --model_name_or_path output/sft --data_file_paths data/train.jsonl \
        --image_folders data/images --num_guesses 4 --out data/train_scored.jsonl [--drop_solved --hotspot_km 25]

The model answers each row k times through the evaluation harness (resumable in --output_dir); rows get
difficulty, pass_rate, mean_geoguessr and agreement. Train on the filtered file, or on the whole scored file with
--sample_by difficulty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from trl import TrlParser

from open_r1.cli import parse, run_main
from open_r1.configs import DifficultyArguments, ModelArguments, SamplingArguments
from open_r1.data.difficulty import keep_mask, score_guesses, with_scores, write_rows
from open_r1.data.hub import read_rows
from open_r1.data.jsonl import iter_jsonl, pair_files_with_folders, parse_row
from open_r1.data.rows import IMAGE_TAG, LABEL_FIELDS, Row
from open_r1.evaluation.harness import PREDICTIONS, evaluate

logger = logging.getLogger(__name__)
MIN_PARSE_RATE = 0.5  # below this, the scores say more about the prompt than about the rows


def record_guesses(record: dict) -> list[tuple[float | None, float | None]]:
    """Every answer's (lat, lon) in a harness record (one answer: the record's own prediction)."""
    if "guesses" in record:
        return [(g["lat"], g["lon"]) for g in record["guesses"]]
    return [(record["pred_lat"], record["pred_lon"])]


def input_rows(args: DifficultyArguments) -> Iterator[tuple[dict, Row]]:
    """(raw object to write back, its Row) of every input row: jsonl lines as they are; a `--dataset_name` row as a
    jsonl row whose images are the absolute paths of its files (train on the output with
    --allow_absolute_image_paths)."""
    if args.dataset_name:
        for row in read_rows(args, check_images=False):
            human = IMAGE_TAG * len(row.image_paths) + row.question
            yield {"id": row.id, "image": row.image_paths, "conversations": [
                {"from": "human", "value": human}, {"from": "gpt", "value": row.solution}],
                "lat": row.lat, "lon": row.lon, **{name: getattr(row, name) for name in LABEL_FIELDS}}, row
        return
    count = 0
    for path, folder in pair_files_with_folders(args.data_file_paths, args.image_folders):
        for number, raw in iter_jsonl(path):
            if args.max_rows is not None and count >= args.max_rows:
                return
            count += 1
            yield raw, parse_row(raw, f"{path}:{number}", folder, False, args.allow_absolute_image_paths)


def main(args: DifficultyArguments, model_args: ModelArguments, sampling_args: SamplingArguments) -> int:
    """Score, filter and write the rows; returns the number written."""
    evaluate(args, model_args, sampling_args)
    records = {}
    with open(Path(args.output_dir) / PREDICTIONS, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            records[record["id"]] = record
    raws, scores, lats, lons = [], [], [], []
    for raw, row in input_rows(args):
        score = score_guesses(record_guesses(records[row.id]), row.lat, row.lon, args.threshold_km)
        raws.append(with_scores(raw, score, row.source))
        scores.append(score)
        lats.append(row.lat)
        lons.append(row.lon)
    guesses = [guess for record in records.values() for guess in record_guesses(record)]
    parsed = sum(lat is not None for lat, _ in guesses) / max(1, len(guesses))
    if parsed < MIN_PARSE_RATE:
        logger.warning("only %.0f%% of the model's answers give coordinates, so nearly every row scores as hard: "
                       "do --question_template and --max_pixels match what %s was trained on? Its answers are in %s",
                       100 * parsed, model_args.model_name_or_path, Path(args.output_dir) / PREDICTIONS)
    keep = keep_mask(scores, lats, lons, drop_solved=args.drop_solved, min_difficulty=args.min_difficulty,
                     hotspot_km=args.hotspot_km)
    written = write_rows(args.out, (raw for raw, k in zip(raws, keep) if k))
    solved = sum(s.pass_rate >= 1.0 for s in scores)
    logger.info("%d rows scored (k=%d, %g km): mean pass rate %.3f, %d solved k/k; %d written to %s",
                len(scores), args.num_guesses, args.threshold_km, sum(s.pass_rate for s in scores) / max(1, len(scores)),
                solved, written, args.out)
    if not written:
        logger.warning("every row was filtered out: %s holds no rows to train on", args.out)
    return written


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(lambda: main(*parse(TrlParser((DifficultyArguments, ModelArguments, SamplingArguments)))))
