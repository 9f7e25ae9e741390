"""Find and load the model to evaluate, whatever form a run left it in.

Accepted: a hub id, a local folder (a finished run's `--output_dir`), a training checkpoint
(`output/run/checkpoint-500`, whose processor may only be in the run folder above it), or a LoRA adapter
(a folder with `adapter_config.json`: its base model is the one that file names, or `--base_model`). The
weights go through the training stack's `load_model`, so the class comes from the config and never from the
folder name; an adapter is merged into its base with peft, since inference needs no separate adapter.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, ProcessorMixin
from trl import ModelConfig

from open_r1.compat import find_adapter_config_file
from open_r1.errors import InputError
from open_r1.modeling.checkpoints import WEIGHT_FILES
from open_r1.modeling.loading import load_model, load_processor

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


class ModelLoadError(InputError):
    """A model location that cannot be evaluated, with what to do about it."""


@dataclass(frozen=True)
class ModelSource:
    """Where the weights, the optional LoRA adapter and the processor of a model to evaluate live."""

    weights: str  # the full model, or the base of an adapter
    adapter: str | None
    processor: str


def _has_processor(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in PROCESSOR_FILES)


def _adapter_config(model: str, revision: str) -> dict | None:
    """The adapter config of a local folder or hub repo, or None if it is a full model."""
    if Path(model).is_dir():
        path = Path(model) / ADAPTER_CONFIG
        if not path.is_file():
            return None
    else:
        found = find_adapter_config_file(model, revision=revision)
        if found is None:
            return None
        path = Path(found)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path}: cannot read the adapter config: {err}") from None


def _check_weights(folder: Path) -> None:
    """A local full-model folder must hold consolidated weights (a ZeRO-3 checkpoint may hold shards only)."""
    if not folder.is_dir() or any((folder / name).is_file() for name in WEIGHT_FILES):
        return
    if any(p.name.startswith("global_step") for p in folder.iterdir() if p.is_dir()):
        raise ModelLoadError(
            f"{folder}: only DeepSpeed shards (global_step*), no model weights; consolidate them first with "
            f"`python {folder}/zero_to_fp32.py {folder} {folder}`"
        )
    if (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: config.json but no weights ({', '.join(WEIGHT_FILES)})")


def resolve_model(model_name_or_path: str, base_model: str | None = None, revision: str = "main") -> ModelSource:
    """Where to load weights, adapter and processor from for `model_name_or_path`."""
    adapter = _adapter_config(model_name_or_path, revision)
    if adapter is not None:
        weights = base_model or adapter.get("base_model_name_or_path")
        if not weights:
            raise ModelLoadError(
                f"{model_name_or_path}/{ADAPTER_CONFIG}: field 'base_model_name_or_path' is empty; pass --base_model"
            )
        if Path(weights).is_absolute() and not Path(weights).exists():
            raise ModelLoadError(
                f"{model_name_or_path}/{ADAPTER_CONFIG}: field 'base_model_name_or_path': {weights} does not exist "
                f"here; pass --base_model with the base model's hub id or local folder"
            )
        adapter_path: str | None = model_name_or_path
    else:
        if base_model:
            logger.warning("--base_model %s ignored: %s is a full model, not an adapter",
                           base_model, model_name_or_path)
        weights, adapter_path = model_name_or_path, None
        _check_weights(Path(model_name_or_path))
    candidates = [Path(model_name_or_path)]
    if re.fullmatch(r"checkpoint-\d+", Path(model_name_or_path).name):
        candidates.append(Path(model_name_or_path).parent)  # the trainer saves the processor in the run folder
    processor = next((str(c) for c in candidates if _has_processor(c)), None)
    if processor is None:
        processor = weights if adapter_path is not None else model_name_or_path
    return ModelSource(weights=weights, adapter=adapter_path, processor=processor)


def default_dtype() -> str:
    """bfloat16 on a GPU, float32 on a CPU (where bfloat16 matmuls are slow)."""
    return "bfloat16" if torch.cuda.is_available() else "float32"


def load_inference_model(
    source: ModelSource, *, dtype: str | None = None, attn_implementation: str | None = None, revision: str = "main"
) -> PreTrainedModel:
    """The model in eval mode, with a LoRA adapter merged into its base when there is one."""
    args = ModelConfig(
        model_name_or_path=source.weights,
        model_revision=revision,
        dtype=dtype or default_dtype(),
        attn_implementation=attn_implementation,
    )
    try:
        model = load_model(args)
    except OSError as err:
        if source.adapter is None:
            raise
        raise ModelLoadError(
            f"cannot load the base model {source.weights} named by {source.adapter}/{ADAPTER_CONFIG} ({err}); "
            f"pass --base_model"
        ) from err
    if source.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
        logger.info("merged LoRA adapter %s into %s", source.adapter, source.weights)
    return model.eval()


def load_inference_processor(
    source: ModelSource, *, min_pixels: int | None, max_pixels: int | None, revision: str = "main"
) -> ProcessorMixin:
    """The processor with the training stack's left padding and pixel bounds."""
    return load_processor(source.processor, min_pixels=min_pixels, max_pixels=max_pixels, revision=revision)


def save_merged(source: ModelSource, folder: Path, processor: ProcessorMixin, dtype: str | None = None) -> str:
    """A folder with the full model (adapter merged) and its processor, for engines that load from disk (vLLM).

    Written once: a folder that already holds a merged model for this adapter is reused.
    """
    marker = folder / "merged_from.json"
    origin = {"weights": source.weights, "adapter": source.adapter}
    if marker.is_file() and json.loads(marker.read_text()) == origin:
        return str(folder)
    model = load_inference_model(source, dtype=dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    marker.write_text(json.dumps(origin))
    logger.info("saved the merged model to %s", folder)
    return str(folder)
