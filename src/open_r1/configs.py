"""Every argument dataclass of the entry scripts, in one home; `TrlParser` parses them next to TRL's own configs.
One dataclass per concern, each field declared once; an entry's class combines the concerns it runs with, so a
flag it does not support is refused by its parser (`--streaming` is GRPO's alone).

    grpo_jsonl.py  GRPOScriptArguments, GRPOConfig, ModelConfig
    sft.py         SFTScriptArguments, SFTConfig, ModelConfig
    eval_geo.py    EvalArguments, ModelArguments, SamplingArguments
    difficulty.py  DifficultyArguments, ModelArguments, SamplingArguments
    predict.py     PredictArguments, ModelArguments, SamplingArguments
    data/to_llamafactory.py  ExportArguments;  tools/export.py  ToolExportArguments

Where an entry's natural default differs (evaluation reads the test split; inference takes the model's own pixel
bounds), `with_defaults` gives it the same fields with other defaults. Every `__post_init__` checks its own
fields and calls `super().__post_init__()`, so a combined class runs each concern's checks once; a bad value
raises `ArgumentError`, which an entry point prints as one `error:` line.

A low layer: it imports only the answer format, the schedules and the errors, so reading a config never imports
rewards, training or evaluation code. The names a choice can take live here too (`SFT_TARGETS`, `BENCHMARKS`)
and the modules that implement them import them from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from open_r1.answer.format import DEFAULT_GEO_QUESTION
from open_r1.errors import ArgumentError
from open_r1.schedules import SCHEDULES, parse_weight_schedules

SFT_TARGETS = ("chain_of_region", "answer")  # rule-based Chain-of-Region targets, or the rows' own gpt answers
BENCHMARKS = ("im2gps3k", "yfcc4k", "osv5m")  # benchmarks with published results to --compare with
METRIC_SETS = ("geo_r", "osv5m")  # evaluation metric definitions: ours, or OSV-5M's exactly
TOP5_LEVELS = ("region", "country", "city")  # what a correct guess must name for the top-5 weighted score
REWARD_ERRORS = ("skip", "raise")  # a reward that fails on a completion: no value for it (counted), or stop
BALANCE_BY = ("country", "region", "geocell")  # the groups --balance_by draws evenly (with --balance_alpha)
SAMPLE_BY = ("difficulty",)  # row fields --sample_by draws rows in proportion to
TRAIN_FILE, TEST_FILE = "data/demo/train.jsonl", "data/demo/test.jsonl"
TRAINING_PIXELS = (3136, 401408)  # the image area bounds (min, max) of training and its recipes' default

A = TypeVar("A")


class Arguments:
    """The end of the cooperative `__post_init__` chain of every argument dataclass."""

    def __post_init__(self) -> None:
        pass


def with_defaults(cls: type[A], doc: str, **defaults: Any) -> type[A]:
    """A subclass of the dataclass `cls` whose fields named in `defaults` start at other values; type and help stay
    those `cls` declares."""
    declared = {f.name: f for f in dataclasses.fields(cls)}
    namespace: dict[str, Any] = {"__doc__": doc, "__module__": __name__, "__annotations__": {}}
    for name, value in defaults.items():
        namespace["__annotations__"][name] = declared[name].type
        namespace[name] = field(default=value, metadata=declared[name].metadata)
    return dataclass(type(f"{cls.__name__}With{len(defaults)}Defaults", (cls,), namespace))


@dataclass
class RowFiles(Arguments):
    """Where the rows and their images are, and how many to read."""

    data_file_paths: str = field(
        default=TRAIN_FILE,
        metadata={"help": "jsonl files, separated by ':' (a.jsonl:b.jsonl)"},
    )
    image_folders: str = field(
        default="data/demo/images",
        metadata={"help": "image folders paired by position with --data_file_paths, separated by ':'"},
    )
    max_rows: int | None = field(default=None, metadata={"help": "read at most this many rows"})
    allow_absolute_image_paths: bool = field(
        default=False,
        metadata={"help": "accept absolute image paths in the rows; by default every image path is relative to its "
                  "--image_folders entry, and none may climb out of it with '..'"},
    )


@dataclass
class HubDatasetArguments(Arguments):
    """A Hugging Face dataset to read rows from instead of jsonl files (`open_r1.data.hub`)."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "read rows with datasets.load_dataset instead of --data_file_paths: a Hub id, a local folder "
                  "(parquet files, or images beside a metadata.csv), a parquet/arrow/csv/json file, or a save_to_disk "
                  "folder"},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "with --dataset_name: its configuration"})
    dataset_split: str = field(
        default="train", metadata={"help": "with --dataset_name: the split, slices included (train, test[:500])"}
    )
    image_column: str | None = field(
        default=None, metadata={"help": "the image column (an Image, a list of Images, or paths); default: guessed"}
    )
    lat_column: str | None = field(default=None, metadata={"help": "the latitude column; default: guessed "
                                                                   "(latitude, lat, LAT, ...)"})
    lon_column: str | None = field(default=None, metadata={"help": "the longitude column; default: guessed "
                                                                   "(longitude, lon, lng, LON, ...)"})
    coordinates_column: str | None = field(
        default=None, metadata={"help": "one column of [latitude, longitude] pairs, instead of --lat/--lon_column"}
    )
    label_columns: str | None = field(
        default=None,
        metadata={"help": "label columns as FIELD=COLUMN, FIELD one of country, region, city (e.g. "
                  "'country=country_code region=state city'); default: guessed"},
    )
    id_column: str | None = field(default=None, metadata={"help": "the row id column; default: guessed, else the row "
                                                                  "index"})
    image_cache_dir: str | None = field(
        default=None,
        metadata={"help": "where embedded image bytes are written once as files (default: geo_r_images in the "
                  "datasets cache)"},
    )

    def __post_init__(self) -> None:
        if self.coordinates_column and (self.lat_column or self.lon_column):
            raise ArgumentError("--coordinates_column replaces --lat_column/--lon_column: give one or the other")
        if bool(self.lat_column) != bool(self.lon_column):
            raise ArgumentError("--lat_column and --lon_column go together")
        super().__post_init__()


@dataclass
class PromptArguments(Arguments):
    """The text of the user turn."""

    question_template: str | None = field(
        default=None,
        metadata={
            "help": "text of the user turn; '{question}' is replaced by the row's question. Default: the geo "
            "template (region-level reasoning, then coordinates) for rows with coordinates, a generic "
            "think/answer template otherwise. Give evaluation the one the model was trained with"
        },
    )


@dataclass
class PixelBounds(Arguments):
    """The image area given to the vision tower."""

    min_pixels: int | None = field(
        default=TRAINING_PIXELS[0],
        metadata={"help": "smallest image area given to the vision tower (evaluation and prediction: default the "
                  "model's own)"},
    )
    max_pixels: int | None = field(
        default=TRAINING_PIXELS[1],
        metadata={"help": "largest image area given to the vision tower (evaluation and prediction: default the "
                  "model's own, which a geo-r checkpoint saved from its training settings)"},
    )


ModelPixelBounds = with_defaults(
    PixelBounds, "Image size bounds; unset, they are the model's own (a geo-r checkpoint saves its training "
    "settings).", min_pixels=None, max_pixels=None)


@dataclass
class HeldOutSplit(Arguments):
    """The rows a training run holds out for evaluation."""

    val_split_ratio: float = field(
        default=0.0,
        metadata={"help": "share of rows held out for evaluation; in open_r1.eval_geo, evaluate only on the rows a "
                  "training run with this --val_split_ratio and --seed held out of these files"},
    )


@dataclass
class DataArguments(RowFiles, HubDatasetArguments, PromptArguments, PixelBounds, HeldOutSplit):
    """Where a training run's rows and images are, and how prompts and images are shaped."""


@dataclass
class RewardArguments(Arguments):
    """Which rewards to train with and how they are set."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "haversine"],
        metadata={"help": "rewards by name (see open_r1.rewards.REWARDS): format, haversine, hierarchy, geohash, "
                  "geoguessr, georpiecewise, within_km, accuracy, iou, or those of --reward_module"},
    )
    reward_module: str | None = field(
        default=None,
        metadata={"help": "a .py file whose public reward functions fn(prompts, completions, **kwargs) are "
                  "registered under their names, for use in --reward_funcs"},
    )
    tau_start: float = field(
        default=2000.0, metadata={"help": "haversine: distance scale (km) of exp(-d / tau) at the first step"}
    )
    tau_end: float = field(default=25.0, metadata={"help": "haversine: distance scale (km) at the last step"})
    tau_schedule: str = field(
        default="exponential",
        metadata={"help": "haversine: how tau goes from tau_start to tau_end over training",
                  "choices": list(SCHEDULES)},
    )
    reward_weight_schedules: list[str] = field(
        default_factory=list,
        metadata={"help": "rewards whose weight moves over training, as NAME=START:END[:SCHEDULE] (schedule: "
                  f"{', '.join(SCHEDULES)}; default linear; step@F switches at share F of training), e.g. "
                  "hierarchy=1.0:0.2:linear haversine=0.2:1.0:cosine. They replace those rewards' --reward_weights; "
                  "the weights applied are logged as reward_weights/<name>"},
    )
    format_penalty: float = field(
        default=-0.1, metadata={"help": "format: reward of a completion without one parseable coordinate pair"}
    )
    country_weight: float = field(default=0.5, metadata={"help": "hierarchy: weight of the right country"})
    region_weight: float = field(default=0.3, metadata={"help": "hierarchy: weight of the right region (admin1)"})
    city_weight: float = field(default=0.2, metadata={"help": "hierarchy: weight of the right city"})
    geohash_precision: int = field(
        default=6, metadata={"help": "geohash: number of geohash characters compared (1-12; 6 is about 1 km)"}
    )
    km_thresholds: list[float] = field(
        default_factory=lambda: [25.0, 200.0, 750.0, 2500.0],
        metadata={"help": "within_km: the distances (km) whose share the answer falls within is the reward; add 1 "
                  "when the pictures tell the street"},
    )
    tool_call_penalty: float = field(
        default=0.2,
        metadata={"help": "tool_use: reward taken off per invalid tool call (unknown tool, bad arguments, unreadable "
                  "call, a tool's error) and per call beyond --max_tool_calls"},
    )
    max_tool_calls: int = field(
        default=3, metadata={"help": "tool_use: calls per episode that go unpenalised; more cost tool_call_penalty each"}
    )
    reward_errors: str = field(
        default="skip",
        metadata={"help": "a reward that raises or returns NaN/inf or the wrong number of values: 'skip' gives no "
                  "value for those completions (logged as rewards/<name>/errors, first traceback printed), "
                  "'raise' stops the run at once", "choices": list(REWARD_ERRORS)},
    )
    reward_max_failing_steps: int = field(
        default=10,
        metadata={"help": "with --reward_errors skip: stop the run when a reward fails on this many steps in a row "
                  "(0: never)"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = self.reward_funcs.split()
        if isinstance(self.reward_weight_schedules, str):
            self.reward_weight_schedules = self.reward_weight_schedules.split()
        for schedule in parse_weight_schedules(self.reward_weight_schedules):
            if schedule.name not in self.reward_funcs:
                raise ArgumentError(f"--reward_weight_schedules names {schedule.name!r}, which is not in --reward_funcs "
                                 f"{self.reward_funcs}")
        if self.tau_schedule not in SCHEDULES:
            raise ArgumentError(f"tau_schedule must be one of {SCHEDULES}, got {self.tau_schedule!r}")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise ArgumentError(f"tau_start and tau_end must be positive km, got {self.tau_start} and {self.tau_end}")
        if min(self.country_weight, self.region_weight, self.city_weight) < 0:
            raise ArgumentError("hierarchy weights must not be negative")
        if not self.km_thresholds or min(self.km_thresholds) <= 0:
            raise ArgumentError(f"km_thresholds must be positive distances in km, got {self.km_thresholds}")
        if not 1 <= self.geohash_precision <= 12:
            raise ArgumentError(f"geohash_precision must be in 1..12, got {self.geohash_precision}")
        if self.tool_call_penalty < 0 or self.max_tool_calls < 0:
            raise ArgumentError("tool_call_penalty and max_tool_calls must not be negative")
        if self.reward_errors not in REWARD_ERRORS:
            raise ArgumentError(f"reward_errors must be one of {REWARD_ERRORS}, got {self.reward_errors!r}")
        if self.reward_max_failing_steps < 0:
            raise ArgumentError(f"reward_max_failing_steps must be >= 0, got {self.reward_max_failing_steps}")
        super().__post_init__()


@dataclass
class RowSamplingArguments(Arguments):
    """How often each training row is drawn (see `open_r1.data.sampling`)."""

    balance_by: str | None = field(
        default=None,
        metadata={"help": "draw training rows so each group's share is proportional to (its row count) ** "
                  "--balance_alpha: groups are countries, country/region pairs, or geohash cells", "choices": list(BALANCE_BY)},
    )
    balance_alpha: float = field(
        default=0.5, metadata={"help": "with --balance_by: 1 keeps the data's own mix, 0 draws every group equally"}
    )
    balance_geocell_precision: int = field(
        default=3, metadata={"help": "with --balance_by geocell: geohash characters per cell (3 is about 156 km)"}
    )
    sample_by: str | None = field(
        default=None,
        metadata={"help": "draw training rows in proportion to this field of theirs ('difficulty', written by "
                  "python -m open_r1.difficulty)", "choices": list(SAMPLE_BY)},
    )


@dataclass
class ToolArguments(Arguments):
    """Which tools the model may call in an episode (none by default)."""

    tools: list[str] = field(
        default_factory=list,
        metadata={"help": "tools the model may call: zoom (a full-resolution crop of the photo), lookup (a place's "
                  "coordinates from the offline GeoNames table), or those of --tool_module; none by default. SFT "
                  "targets call them where a row allows (zoom on its clue_box, lookup of its city)"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.tools, str):
            self.tools = self.tools.split()
        super().__post_init__()


@dataclass
class ToolModuleArguments(Arguments):
    """Tools of the user's own."""

    tool_module: str | None = field(
        default=None,
        metadata={"help": "a .py file whose public, typed and docstringed functions become tools under their names, "
                  "for use in --tools"},
    )


@dataclass
class VisionTowerArguments(Arguments):
    """Whether training moves the vision tower."""

    freeze_vision_modules: bool = field(default=False, metadata={"help": "do not train the vision tower"})


@dataclass
class SFTTargetArguments(Arguments):
    """The assistant turns a supervised run trains on."""

    targets: str = field(
        default="chain_of_region",
        metadata={
            "help": "assistant turns to train on: 'chain_of_region' (rule-based region chain + answer built from "
            "the row's labels; with --tools, episodes that zoom on a row's clue_box and look up the city) or "
            "'answer' (the rows' own gpt answers)",
            "choices": list(SFT_TARGETS),
        },
    )


@dataclass
class GRPOScriptArguments(DataArguments, RewardArguments, RowSamplingArguments, ToolArguments, ToolModuleArguments,
                          VisionTowerArguments):
    """Arguments of `grpo_jsonl.py` beyond TRL's `GRPOConfig` and `ModelConfig`."""

    streaming: bool = field(
        default=False,
        metadata={"help": "read rows lazily with a shuffle buffer (millions of rows, WebDataset shards); needs "
                  "--max_steps"},
    )
    dedupe_images: bool = field(
        default=True,
        metadata={"help": "encode each distinct image of a batch once (GRPO repeats every prompt num_generations "
                  "times) in generation and in every log-prob pass, with the same losses and gradients; false: the "
                  "vision tower encodes every copy"},
    )
    shared_prefill: bool = field(
        default=True,
        metadata={"help": "transformers generation: prefill each distinct prompt of a generation batch once and "
                  "share its KV cache with the prompt's num_generations copies, with the same completions; false: "
                  "prefill every copy (vLLM generation does its own prefix caching)"},
    )
    length_aware_micro_batches: bool = field(
        default=True,
        metadata={"help": "put rows of similar length in one gradient-accumulation micro-batch and cut each to its "
                  "longest row, where the loss and gradient stay those of TRL's shuffled micro-batches (not bnpo); "
                  "false: TRL's micro-batches, all padded to the generation batch's longest row"},
    )


@dataclass
class SFTScriptArguments(DataArguments, ToolArguments, ToolModuleArguments, SFTTargetArguments, VisionTowerArguments):
    """Arguments of `sft.py` beyond TRL's `SFTConfig` and `ModelConfig`."""


@dataclass
class OutputPath(Arguments):
    """Where a data tool writes its result (required)."""

    out: str = field(
        kw_only=True,
        metadata={"help": "where the result goes: the LLaMA-Factory export's folder (its dataset file and "
                  "dataset_info.json); difficulty's jsonl file of the input rows with difficulty, pass_rate, "
                  "mean_geoguessr and agreement (those the filters keep)"},
    )


@dataclass
class ExportArguments(RowFiles, HubDatasetArguments, PromptArguments, SFTTargetArguments, OutputPath):
    """What to export to LLaMA-Factory and where (`--question_template`: the one given to GRPO)."""

    export_name: str = field(default="geo_r_sft", metadata={"help": "the exported dataset's name in "
                                                                     "dataset_info.json (--dataset_name is the input)"})


@dataclass
class ToolExportArguments(ExportArguments, ToolArguments):
    """What to export with tool-using targets (LLaMA-Factory function_call/observation turns)."""


@dataclass
class ModelArguments(Arguments):
    """Which model to run and how to load it."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "hub id, local folder, training checkpoint (output/run/checkpoint-500) or LoRA adapter "
                  "folder (its adapter_config.json names the base model)"},
    )
    base_model: str | None = field(
        default=None, metadata={"help": "base model of a LoRA adapter, instead of the one adapter_config.json names"}
    )
    model_revision: str = field(default="main", metadata={"help": "hub revision"})
    dtype: str | None = field(
        default=None,
        metadata={"help": "weights dtype; default bfloat16 on a GPU, float32 on a CPU",
                  "choices": ["auto", "bfloat16", "float16", "float32"]},
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. flash_attention_2, sdpa"})
    backend: str = field(
        default="auto",
        metadata={"help": "generation engine: vllm when installed and a GPU is present, else transformers",
                  "choices": ["auto", "transformers", "vllm"]},
    )
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vLLM: share of GPU memory it may use"})

    def __post_init__(self) -> None:
        if not self.model_name_or_path:
            raise ArgumentError("--model_name_or_path is required")
        super().__post_init__()


@dataclass
class SamplingArguments(Arguments):
    """How answers are generated."""

    batch_size: int = field(default=8, metadata={"help": "images per generation batch (and per flush to disk)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "longest completion, reasoning included"})
    temperature: float | None = field(
        default=None, metadata={"help": "sampling temperature; default 0 (greedy) for one guess, 1.0 for several"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling when sampling"})
    seed: int = field(default=42, metadata={"help": "sampling seed; also the held-out split's seed"})

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ArgumentError(f"--batch_size must be at least 1, got {self.batch_size}")
        super().__post_init__()


@dataclass
class InferenceToolArguments(Arguments):
    """Tool episodes at inference (evaluation, prediction): the same tools as in training, run by geo-r's own loop."""

    max_tool_rounds: int = field(
        default=3, metadata={"help": "with --tools: rounds of tool calls per image before the model must answer (as "
                             "--max_tool_calling_iterations in training)"}
    )
    episode_dir: str | None = field(
        default=None, metadata={"help": "with --tools: save each episode's messages (JSON) and zoom crops (PNG) here"}
    )


@dataclass
class InferenceArguments(ModelPixelBounds, PromptArguments, ToolArguments, ToolModuleArguments,
                         InferenceToolArguments):
    """How the model is prompted at inference: images, prompt, tools."""


@dataclass
class EvalRunArguments(Arguments):
    """Where an evaluation writes, how many guesses it samples, and what it reports."""

    output_dir: str = field(default="output/eval", metadata={"help": "where predictions.jsonl, metrics.json and "
                                                                        "the plots go; a rerun resumes there"})
    num_guesses: int = field(
        default=1, metadata={"help": "guesses sampled per image (k); k > 1 adds best-of-k and the top-5 weighted score"}
    )
    benchmark: str | None = field(
        default=None,
        metadata={"help": "benchmark of the data, for --compare (guessed from the data path when unset)",
                  "choices": list(BENCHMARKS)},
    )
    compare: bool = field(default=False, metadata={"help": "print the run next to published results"})
    submission: str | None = field(default=None, metadata={"help": "also write a competition CSV (id, lat, lon)"})
    plots: bool = field(default=True, metadata={"help": "write error_cdf.png and world_map.png (--no_plots: skip)"})
    geocode_labels: bool = field(
        default=False,
        metadata={"help": "take the true country/region/city from the geocoder at the true coordinates, ignoring "
                  "the rows' labels, so truth and prediction use one gazetteer"},
    )
    metrics: str = field(
        default="geo_r",
        metadata={"help": "metric definitions: 'geo_r' (ours: acc within <= d km, truth labels by the labelling "
                  "rule) or 'osv5m' (OSV-5M's exactly: < d km, R = 6371 km, country/region/sub-region/city from "
                  "reverse_geocoder at prediction and truth); metrics.json names the set",
                  "choices": list(METRIC_SETS)},
    )
    top5_level: str = field(
        default="region",
        metadata={"help": "with several guesses: the place level (state/region, country or city) a guess must get "
                  "right to earn its position's credit in the top-5 weighted score", "choices": list(TOP5_LEVELS)},
    )
    overwrite: bool = field(default=False, metadata={"help": "discard earlier predictions in --output_dir"})


@dataclass
class EvalArguments(with_defaults(RowFiles, "The test split's rows.", data_file_paths=TEST_FILE),
                    with_defaults(HubDatasetArguments, "The test split of a dataset.", dataset_split="test"),
                    HeldOutSplit, InferenceArguments, EvalRunArguments):
    """What to evaluate on, and what to write."""


@dataclass
class DifficultyArguments(
    RowFiles, HubDatasetArguments, InferenceArguments, OutputPath,
    with_defaults(EvalRunArguments, "The harness run behind the scores.", output_dir="output/difficulty",
                  num_guesses=4, plots=False),
):
    """How hard each training row is for a model (k sampled answers through the evaluation harness), and which
    rows the hard-sample training file keeps. Every row of the files is scored: there is no held-out split."""

    val_split_ratio: ClassVar[float] = 0.0  # what the harness reads: score every row (not a flag)
    threshold_km: float = field(default=25.0, metadata={"help": "an answer passes within this distance (km)"})
    drop_solved: bool = field(default=False, metadata={"help": "leave out rows the model solves k/k"})
    min_difficulty: float = field(default=0.0, metadata={"help": "leave out rows with difficulty (1 - pass rate) "
                                                                "below this"})
    hotspot_km: float | None = field(
        default=None, metadata={"help": "leave out rows within this distance (km) of any row the model solves k/k"}
    )

    def __post_init__(self) -> None:
        if self.threshold_km <= 0 or (self.hotspot_km is not None and self.hotspot_km < 0):
            raise ArgumentError("--threshold_km must be positive and --hotspot_km not negative")
        if not 0.0 <= self.min_difficulty <= 1.0:
            raise ArgumentError(f"--min_difficulty must be in [0, 1], got {self.min_difficulty}")
        super().__post_init__()


@dataclass
class PredictArguments(HubDatasetArguments, InferenceArguments):
    """What to predict."""

    images: list[str] = field(
        default_factory=list,
        metadata={"help": "one image; several images of one place (e.g. four views); or one folder, whose images "
                  "are predicted one by one"},
    )
    question: str = field(default=DEFAULT_GEO_QUESTION, metadata={"help": "the question inside the prompt"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of text"})

    def __post_init__(self) -> None:
        if not self.images and not self.dataset_name:
            raise ArgumentError("--images (image files of one place, or one folder) or --dataset_name is required")
        if self.images and self.dataset_name:
            raise ArgumentError("--images and --dataset_name: give one or the other")
        super().__post_init__()
