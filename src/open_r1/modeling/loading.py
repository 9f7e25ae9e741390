"""Load a Qwen2.5-VL-style model and its processor the way every stage needs them.

Two things are decided here once, so no caller can get them wrong:
- the processor pads on the LEFT. Qwen2.5-VL's `get_rope_index` reads positions from the attention mask,
  and a right-padded batch that mixes rows with 1 and 4 images crashes there with a shape mismatch; TRL
  sets left padding only when it loads the processor itself, and leaves it to callers otherwise.
- the model class comes from the checkpoint's config, never from its folder name, so an SFT checkpoint
  saved as `output/sft-run3` loads like `Qwen/Qwen2.5-VL-3B-Instruct`.
"""

from __future__ import annotations

import logging

from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
    TrainingArguments,
)
from trl import ModelConfig
from trl.trainer.utils import create_model_from_path

logger = logging.getLogger(__name__)

VISION_MODULE_PREFIXES = ("visual", "model.visual", "vision_tower", "model.vision_tower")


def ensure_left_padding(processor: ProcessorMixin) -> ProcessorMixin:
    """Force left padding (and left truncation) on a processor and its tokenizer; return it."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.padding_side != "left":
        logger.info("processor padded on the %s; switching to left padding", tokenizer.padding_side)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def load_processor(
    model_name_or_path: str,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    revision: str = "main",
    trust_remote_code: bool = False,
) -> ProcessorMixin:
    """The model's processor with left padding and the image size bounds applied."""
    processor = AutoProcessor.from_pretrained(
        model_name_or_path, revision=revision, trust_remote_code=trust_remote_code, padding_side="left"
    )
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is not None and (min_pixels or max_pixels):
        size = dict(getattr(image_processor, "size", None) or {})
        if min_pixels:
            size["shortest_edge"] = min_pixels
            image_processor.min_pixels = min_pixels
        if max_pixels:
            size["longest_edge"] = max_pixels
            image_processor.max_pixels = max_pixels
        image_processor.size = size
    return ensure_left_padding(processor)


def model_init_kwargs(model_args: ModelConfig, trust_remote_code: bool = False) -> dict:
    """`from_pretrained` keyword arguments from TRL's ModelConfig."""
    kwargs = {"revision": model_args.model_revision, "trust_remote_code": trust_remote_code}
    if model_args.dtype is not None:
        kwargs["dtype"] = model_args.dtype
    if model_args.attn_implementation is not None:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return kwargs


def load_model(
    model_args: ModelConfig,
    training_args: TrainingArguments | None = None,
    *,
    freeze_vision_modules: bool = False,
) -> PreTrainedModel:
    """Load the model with the class its config names; optionally freeze the vision tower.

    With `training_args`, the distributed state is set up first: under DeepSpeed ZeRO-3, `from_pretrained`
    partitions the weights while loading and needs the process group (and the world size) to exist already.
    """
    trust_remote_code = bool(getattr(training_args, "trust_remote_code", False))
    if training_args is not None:
        training_args.distributed_state  # noqa: B018  (creates the process group on first access)
    path = model_args.model_name_or_path
    config = AutoConfig.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=trust_remote_code)
    kwargs = model_init_kwargs(model_args, trust_remote_code)
    if type(config) in AutoModelForImageTextToText._model_mapping:
        model = create_model_from_path(path, architecture=AutoModelForImageTextToText, **kwargs)
    else:
        model = create_model_from_path(path, **kwargs)
    if freeze_vision_modules:
        frozen = freeze_vision(model)
        logger.info("froze %d vision parameters", frozen)
    return model


def freeze_vision(model: PreTrainedModel) -> int:
    """Stop gradients through the vision tower (and its merger); return how many tensors were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if name.startswith(VISION_MODULE_PREFIXES) or ".visual." in name:
            param.requires_grad_(False)
            frozen += 1
    if frozen == 0:
        raise ValueError(f"--freeze_vision_modules: no vision parameters found in {type(model).__name__}")
    return frozen


def load_model_and_processor(
    model_args: ModelConfig, training_args: TrainingArguments, script_args
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """What every training entry starts from: the processor (left padding, the run's pixel bounds) and the model
    (vision tower frozen when `script_args.freeze_vision_modules`)."""
    processor = load_processor(
        model_args.model_name_or_path,
        min_pixels=script_args.min_pixels,
        max_pixels=script_args.max_pixels,
        revision=model_args.model_revision,
        trust_remote_code=bool(getattr(training_args, "trust_remote_code", False)),
    )
    model = load_model(
        model_args, training_args, freeze_vision_modules=getattr(script_args, "freeze_vision_modules", False)
    )
    return model, processor
