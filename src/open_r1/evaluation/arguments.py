"""Command-line settings of `eval_geo` and `predict`, parsed by TRL's `TrlParser` (so `--config x.yaml` works)."""

from __future__ import annotations

from dataclasses import dataclass, field

from open_r1.answer_format import DEFAULT_GEO_QUESTION
from open_r1.configs import DataArguments
from open_r1.evaluation.published import BENCHMARKS


@dataclass
class ModelArguments:
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
            raise ValueError("--model_name_or_path is required")


@dataclass
class SamplingArguments:
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
            raise ValueError(f"--batch_size must be at least 1, got {self.batch_size}")


@dataclass
class ModelPixelBounds:
    """Image size bounds; unset, they are the model's own (a geo-r checkpoint saves its training settings)."""

    min_pixels: int | None = field(
        default=None, metadata={"help": "smallest image area given to the vision tower (default: the model's own)"}
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "largest image area given to the vision tower (default: the model's own, which a "
                  "geo-r checkpoint saved from its training settings)"},
    )


@dataclass
class EvalArguments(ModelPixelBounds, DataArguments):
    """What to evaluate on, and what to write."""

    data_file_paths: str = field(
        default="data/demo/test.jsonl",
        metadata={"help": "jsonl files in the training format, separated by ':'"},
    )
    val_split_ratio: float = field(
        default=0.0,
        metadata={"help": "evaluate only on the rows a training run with this --val_split_ratio and --seed held "
                  "out of these files"},
    )
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
    overwrite: bool = field(default=False, metadata={"help": "discard earlier predictions in --output_dir"})


@dataclass
class PredictArguments(ModelPixelBounds):
    """What to predict."""

    images: list[str] = field(
        default_factory=list,
        metadata={"help": "one image; several images of one place (e.g. four views); or one folder, whose images "
                  "are predicted one by one"},
    )
    question: str = field(default=DEFAULT_GEO_QUESTION, metadata={"help": "the question inside the prompt"})
    question_template: str | None = field(
        default=None, metadata={"help": "text of the user turn ('{question}' is replaced); default: the geo template"}
    )
    json: bool = field(default=False, metadata={"help": "print JSON instead of text"})

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("--images is required: image files of one place, or one folder")
