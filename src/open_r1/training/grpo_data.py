"""The datasets a GRPO run trains and evaluates on: in memory (validated rows) or streamed (for sets too large
to hold), chosen by `--streaming`. One place decides, so the entry script only asks for them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from datasets import Dataset, IterableDataset
from trl import GRPOConfig

from open_r1.configs import GRPOScriptArguments
from open_r1.data.dataset import rows_to_dataset, split_for_validation, with_images
from open_r1.data.hub import hub_streaming_dataset, read_rows
from open_r1.data.rows import Row
from open_r1.data.sampling import RowSampling, RowWeights, describe_shares, group_key, weighted_draw
from open_r1.errors import ArgumentError

logger = logging.getLogger(__name__)


def _resumed_step(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])


def _resample(train: Dataset, rows: list[Row], sampling: RowSampling, seed: int) -> Dataset:
    """The training rows redrawn (with replacement, as many as there are) by their sampling weights, seeded, so
    TRL's sampler shuffles and resumes the same draw."""
    if len(train) == len(rows):
        kept = rows  # nothing held out: the dataset is the rows, in order
    else:
        by_id = {row.id: row for row in rows}
        kept = [by_id[row_id] for row_id in train["id"]]
    weights = RowWeights.fit(sampling, kept)
    row_weights = [weights(row) for row in kept]
    order = weighted_draw(row_weights, len(kept), seed)
    if sampling.balance_by is not None:
        keys = [group_key(row, sampling.balance_by, sampling.geocell_precision) for row in kept]
        logger.info("--balance_by %s --balance_alpha %g: %s", sampling.balance_by, sampling.alpha,
                    describe_shares(keys, row_weights))
    if sampling.sample_by is not None:
        drawn = len(set(order))
        logger.info("--sample_by %s: %d of %d rows drawn at least once", sampling.sample_by, drawn, len(kept))
    return train.select(order)


def grpo_datasets(
    data_args: GRPOScriptArguments, training_args: GRPOConfig, resume_from: str | None = None
) -> tuple[Dataset | IterableDataset, Dataset | None]:
    """(train, eval) datasets with decoded images on access; eval is None without --val_split_ratio."""
    if not data_args.streaming:
        rows = read_rows(data_args)
        train, held_out = split_for_validation(
            rows_to_dataset(rows, data_args.question_template), data_args.val_split_ratio, training_args.seed
        )
        sampling = RowSampling.from_args(data_args)
        if sampling.active:
            train = _resample(train, rows, sampling, training_args.seed)
        logger.info("%d training rows, %d held out", len(train), len(held_out) if held_out else 0)
        return with_images(train, data_args.max_pixels), with_images(held_out, data_args.max_pixels) if held_out else None

    from open_r1.data.streaming import RankRows, check_sample, grpo_rows_consumed, resolve_sources, streaming_dataset

    if training_args.max_steps <= 0:
        raise ArgumentError("--streaming reads rows lazily and has no length: set --max_steps")
    if data_args.val_split_ratio:
        raise ArgumentError("--streaming cannot hold rows out: evaluate on a separate file with open_r1.eval_geo")
    if data_args.dataset_name and RowSampling.from_args(data_args).active:
        raise ArgumentError("--streaming with --dataset_name reads rows in the dataset's own order: --balance_by and "
                            "--sample_by need the rows in memory (leave out --streaming)")
    if not data_args.dataset_name:
        # bounded start-up check on every rank, no barrier (a full stat of millions of images could outlast
        # ddp_timeout): the first rows of each file and a random sample; every other row is checked as it streams
        checked = check_sample(
            resolve_sources(data_args.data_file_paths, data_args.image_folders),
            seed=training_args.seed,
            allow_absolute_image_paths=data_args.allow_absolute_image_paths,
        )
        logger.info("start-up check: %d sampled rows and their images are fine; the rest are checked as they stream",
                    checked)
    # the stream is shuffled already; TRL's own buffer would hold decoded rows and break exact resumption,
    # and the Trainer's batch skipping on resume would decode every consumed row again
    training_args.shuffle_dataset = False
    training_args.ignore_data_skip = True
    start_row = grpo_rows_consumed(_resumed_step(resume_from), training_args)
    if start_row:
        logger.info("streaming resumes at row %d", start_row)
    # every rank reads the whole stream (Accelerate slices each global batch): decode only this rank's rows
    options = dict(question_template=data_args.question_template, max_pixels=data_args.max_pixels, epochs=None,
                   seed=training_args.seed, start_row=start_row, decode_only=RankRows.for_grpo(training_args))
    if data_args.dataset_name:
        return hub_streaming_dataset(data_args, **options), None
    train = streaming_dataset(
        data_args.data_file_paths,
        data_args.image_folders,
        allow_absolute_image_paths=data_args.allow_absolute_image_paths,
        sampling=RowSampling.from_args(data_args),
        **options,
    )
    return train, None
