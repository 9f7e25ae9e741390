"""One evaluation run: rows in, `predictions.jsonl` + `metrics.json` + plots (+ comparison, submission) out.

Resumable: rows whose id is already in `predictions.jsonl` are not generated again, so a killed run picks up
where it stopped (and a finished one recomputes its metrics without loading the model). The settings that
shape the predictions are kept in `eval_settings.json`; resuming with different ones is refused, since the
file would mix two models or two sampling set-ups.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from open_r1.configs import EvalArguments, ModelArguments, SamplingArguments
from open_r1.console import Progress, say
from open_r1.data.dataset import rows_to_dataset, split_for_validation
from open_r1.data.hub import read_rows
from open_r1.data.rows import DataError, Row
from open_r1.errors import ArgumentError, InputError
from open_r1.evaluation import loading, plots, published, report
from open_r1.evaluation.episodes import ToolEpisodeGenerator, save_episode
from open_r1.evaluation.generation import (
    Generator,
    Sampling,
    TransformersGenerator,
    VLLMGenerator,
    pick_backend,
    row_conversation,
)
from open_r1.evaluation.metrics import compute_metrics
from open_r1.evaluation.records import build_records
from open_r1.evaluation.store import PredictionStore
from open_r1.evaluation.submission import write_submission
from open_r1.modeling.prompt_record import trained_question_template
from open_r1.tools import ToolSet, build_toolset, load_tool_module

logger = logging.getLogger(__name__)

PREDICTIONS, METRICS, SETTINGS = "predictions.jsonl", "metrics.json", "eval_settings.json"
CDF_PNG, MAP_PNG = "error_cdf.png", "world_map.png"
# Settings that change what a prediction record holds; anything else (batch size, backend, ...) may change.
_PINNED = ("model_name_or_path", "base_model", "data_file_paths", "image_folders", "dataset_name", "dataset_config",
           "dataset_split", "val_split_ratio",
           "question_template", "min_pixels", "max_pixels", "num_guesses", "temperature", "top_p",
           "max_new_tokens", "geocode_labels", "tools", "max_tool_rounds")


class SettingsMismatch(InputError):
    """A resumed run whose settings differ from those that wrote its predictions."""


def sampling_from(args: SamplingArguments, num_guesses: int) -> Sampling:
    """Resolve the default temperature: greedy for one guess, 1.0 (GRPO's sampling) for several."""
    temperature = args.temperature if args.temperature is not None else (0.0 if num_guesses == 1 else 1.0)
    return Sampling(args.max_new_tokens, temperature, args.top_p, num_guesses, args.seed)


def evaluation_rows(args: EvalArguments, seed: int) -> list[Row]:
    """The rows to evaluate: every row, or the held-out split; each must have coordinates and a unique id."""
    rows = read_rows(args)
    if args.val_split_ratio:
        _, held_out = split_for_validation(rows_to_dataset(rows, args.question_template), args.val_split_ratio, seed)
        keep = set(held_out["id"])
        rows = [row for row in rows if row.id in keep]
    seen: dict[str, str] = {}
    for row in rows:
        if row.lat is None or row.lon is None:
            raise DataError(f"{row.source}: field 'lat': missing, and the gpt answer holds no coordinates; "
                            f"evaluation needs the true location of every row")
        if row.id in seen:
            raise DataError(f"{row.source}: field 'id': {row.id!r} already used at {seen[row.id]}; "
                            f"ids must be unique to resume by id")
        seen[row.id] = row.source
    return rows


def check_settings(output_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to resume into predictions written with other settings; record the settings otherwise."""
    path = output_dir / SETTINGS
    predictions = output_dir / PREDICTIONS
    if overwrite:
        predictions.unlink(missing_ok=True)
    elif path.is_file() and predictions.is_file():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), settings.get(k)) for k in _PINNED if before.get(k) != settings.get(k)}
        if changed:
            details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise SettingsMismatch(
                f"{predictions} was written with other settings ({details}). Use another --output_dir, or "
                f"--overwrite to start over."
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def tools_from(args: Any) -> ToolSet | None:
    """The `--tools` (and `--tool_module`) of an evaluation or prediction, None without tools."""
    if args.tool_module:
        load_tool_module(args.tool_module)
    return build_toolset(args.tools, max_pixels=args.max_pixels or 401408) if args.tools else None


def build_generator(model_args: ModelArguments, sampling: Sampling, *, min_pixels: int | None,
                    max_pixels: int | None, max_images: int, work_dir: Path, toolset: ToolSet | None = None,
                    max_tool_rounds: int = 3) -> Generator:
    """Load the model with the engine `--backend` picks (vLLM gets an adapter merged into a folder in `work_dir`).
    With a `toolset`, episodes run with transformers `generate` (`ToolEpisodeGenerator`)."""
    source = loading.resolve_model(model_args.model_name_or_path, model_args.base_model, model_args.model_revision)
    processor = loading.load_inference_processor(source, min_pixels=min_pixels, max_pixels=max_pixels,
                                                 revision=model_args.model_revision)
    backend = pick_backend(model_args.backend)
    if toolset is not None and backend == "vllm":
        logger.warning("--tools: episodes run with transformers generate (geo-r's inference tool loop has no vLLM path)")
        backend = "transformers"
    if backend == "vllm":
        model_dir = source.weights if source.adapter is None else loading.save_merged(
            source, work_dir / "merged_model", processor, model_args.dtype)
        return VLLMGenerator(model_dir, processor, sampling, max_images=max_images, dtype=model_args.dtype,
                             gpu_memory_utilization=model_args.gpu_memory_utilization,
                             min_pixels=min_pixels, max_pixels=max_pixels)
    model = loading.load_inference_model(source, dtype=model_args.dtype,
                                         attn_implementation=model_args.attn_implementation,
                                         revision=model_args.model_revision)
    if toolset is not None:
        return ToolEpisodeGenerator(model, processor, sampling, toolset, max_tool_rounds)
    return TransformersGenerator(model, processor, sampling)


def generate_missing(todo: Sequence[Row], store: PredictionStore, generator: Generator, args: EvalArguments,
                     batch_size: int) -> None:
    """Generate the rows not yet stored and append their records, one flushed batch at a time."""
    progress = Progress("evaluation", len(todo), unit="images", every=0)
    say(f"evaluation: {len(todo):,} images to generate, {batch_size} a batch (the first batch also times the rest)")
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        conversations = [row_conversation(row, args.question_template, args.max_pixels) for row in batch]
        if isinstance(generator, ToolEpisodeGenerator):
            generator.with_rows([{"image_paths": row.image_paths} for row in batch])
        records = build_records(batch, generator(conversations), args.geocode_labels)
        if isinstance(generator, ToolEpisodeGenerator):
            for row, record, episode in zip(batch, records, generator.episodes):
                record["tool_calls"] = episode.calls
                if args.episode_dir:
                    save_episode(episode, Path(args.episode_dir), row.id)
        store.append(records)
        progress(start + len(batch))


def run_name(model: str) -> str:
    """A short name for tables and titles: the folder name, with its run for a `checkpoint-N`."""
    path = Path(model)
    return f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint-") and path.parent.name else path.name


def evaluate(args: EvalArguments, model_args: ModelArguments, sampling_args: SamplingArguments) -> dict[str, Any]:
    """Run (or resume) an evaluation and write its files; return the metrics."""
    args.question_template = trained_question_template(args.question_template, model_args.model_name_or_path)
    sampling = sampling_from(sampling_args, args.num_guesses)
    rows = evaluation_rows(args, sampling.seed)
    output_dir = Path(args.output_dir)
    settings = asdict(args) | asdict(model_args) | asdict(sampling)
    data_name = args.dataset_name or args.data_file_paths
    benchmark = args.benchmark or published.guess_benchmark(data_name)
    if args.compare and benchmark is None:
        raise ArgumentError("--compare needs --benchmark (im2gps3k, yfcc4k or osv5m): the data path names none")
    check_settings(output_dir, settings, args.overwrite)

    with PredictionStore(output_dir / PREDICTIONS) as store:
        done = store.done_ids
        missing = [row for row in rows if row.id not in done]
        if len(missing) < len(rows):
            logger.info("resuming: %d of %d rows already in %s", len(rows) - len(missing), len(rows), store.path)
        if missing:
            generator = build_generator(model_args, sampling, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                                        max_images=max(len(r.image_paths) for r in missing), work_dir=output_dir,
                                        toolset=tools_from(args), max_tool_rounds=args.max_tool_rounds)
            generate_missing(missing, store, generator, args, sampling_args.batch_size)
        by_id = {record["id"]: record for record in store.records}
    extra = len(set(by_id) - {row.id for row in rows})
    if extra:
        logger.warning("%s holds %d records for ids outside the evaluated rows; they are not scored",
                       PREDICTIONS, extra)
    records = [by_id[row.id] for row in rows]

    metrics = compute_metrics(records, args.metrics, args.top5_level)
    metrics = {"model": model_args.model_name_or_path, "benchmark": benchmark} | metrics
    calls = [record["tool_calls"] for record in records if "tool_calls" in record]
    if calls:
        metrics["tool_calls_per_image"] = sum(calls) / len(calls)
        metrics["images_with_tool_calls"] = sum(c > 0 for c in calls) / len(calls)
    (output_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    print(report.metrics_table(metrics))

    name = run_name(model_args.model_name_or_path)
    if args.plots:
        title = f"{name} on {benchmark or Path(data_name).name}"
        plots.error_cdf(records, output_dir / CDF_PNG, title)
        plots.world_map(records, output_dir / MAP_PNG, title)
    if args.submission:
        logger.info("submission written to %s", write_submission(records, args.submission))
    if args.compare:
        print()
        print(report.comparison_table(metrics, published.load_published(benchmark=benchmark), benchmark, name))
    logger.info("wrote %s and %s to %s", PREDICTIONS, METRICS, output_dir)
    return metrics
