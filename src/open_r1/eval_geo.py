"""Evaluate a geolocation model on jsonl data or a Hugging Face dataset with the metrics the literature reports.

    python -m open_r1.eval_geo --model_name_or_path output/run1 \
        --data_file_paths data/im2gps3k/test.jsonl --image_folders data/im2gps3k/images \
        --output_dir output/run1/eval-im2gps3k --compare
    python -m open_r1.eval_geo --model_name_or_path output/run1/checkpoint-500 --num_guesses 5 \
        --submission output/run1/submission.csv
    python -m open_r1.eval_geo --config my_eval.yaml
    python -m open_r1.eval_geo --model_name_or_path output/run1 --dataset_name data/my_hub_set   # its test split

Writes predictions.jsonl (one record per image, appended batch by batch: rerun the same command to resume),
metrics.json, error_cdf.png and world_map.png to --output_dir, and prints the metrics table. See
open_r1.evaluation.metrics for how each number is defined.
"""

from __future__ import annotations

import logging

from trl import TrlParser

from open_r1.cli import parse, run_main
from open_r1.configs import EvalArguments, ModelArguments, SamplingArguments
from open_r1.evaluation.harness import evaluate


def main(args: EvalArguments, model_args: ModelArguments, sampling_args: SamplingArguments) -> dict:
    return evaluate(args, model_args, sampling_args)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(lambda: main(*parse(TrlParser((EvalArguments, ModelArguments, SamplingArguments)))))
