"""Load a Qwen2.5-VL-style model and its processor the way every stage needs them.

Decided here once: the processor pads on the left (a right-padded batch mixing rows of 1 and 4 images crashes in
Qwen2.5-VL's `get_rope_index`, and TRL sets left padding only when it loads the processor itself), and the model
class comes from the checkpoint's config, never its folder name, so `output/sft-run3` loads like the base model.
"""

from __future__ import annotations

import importlib.util
import json
import logging

import torch
from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    PreTrainedModel,
    ProcessorMixin,
    TrainingArguments,
)
from transformers.integrations import is_deepspeed_zero3_enabled
from trl import ModelConfig, get_quantization_config

from open_r1.compat import create_model_from_path, is_image_text_to_text_config
from open_r1.errors import ArgumentError

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


def model_init_kwargs(
    model_args: ModelConfig, trust_remote_code: bool = False, extra: dict | str | None = None
) -> dict:
    """`from_pretrained` keyword arguments from TRL's ModelConfig, as TRL's own scripts build them.

    `--load_in_4bit` / `--load_in_8bit` become the bitsandbytes `quantization_config` of TRL's
    `get_quantization_config` (QLoRA with `--use_peft`), with each process's model placed whole on its own GPU.
    `extra` is the run's `--model_init_kwargs` (GRPOConfig / SFTConfig); its entries win, as in TRL, except a
    second `quantization_config` next to the flags, which is refused.
    """
    kwargs = {"revision": model_args.model_revision, "trust_remote_code": trust_remote_code}
    if model_args.dtype is not None:
        kwargs["dtype"] = model_args.dtype
    if model_args.attn_implementation is not None:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        # each process holds its whole k-bit model on its own GPU; under ZeRO-3 transformers refuses a device_map
        # and bitsandbytes places the weights on the current GPU itself
        kwargs["device_map"] = None if is_deepspeed_zero3_enabled() else {"": PartialState().local_process_index}
    if isinstance(extra, str):
        extra = json.loads(extra)
    extra = dict(extra or {})
    if quantization_config is not None and "quantization_config" in extra:
        raise ArgumentError(
            "quantization set twice: by --load_in_4bit/--load_in_8bit and in --model_init_kwargs; keep one"
        )
    return kwargs | extra


def check_quantization(kwargs: dict) -> None:
    """Fail before loading when a k-bit model cannot be loaded here (bitsandbytes needs a CUDA GPU)."""
    if kwargs.get("quantization_config") is None:
        return
    if not torch.cuda.is_available():
        raise RuntimeError(
            "--load_in_4bit / --load_in_8bit (bitsandbytes quantization, QLoRA) needs a CUDA GPU, and none is "
            "visible here; drop the flag to train in full precision on this machine"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            "--load_in_4bit / --load_in_8bit needs bitsandbytes: `bash setup.sh --gpu` installs it "
            "(requirements-gpu.txt), or `pip install bitsandbytes`"
        )


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
    kwargs = model_init_kwargs(model_args, trust_remote_code, getattr(training_args, "model_init_kwargs", None))
    check_quantization(kwargs)
    if training_args is not None:
        state = training_args.distributed_state  # creates the process group on first access
        if "device_map" not in kwargs and state.distributed_type in (DistributedType.MULTI_GPU, DistributedType.DEEPSPEED):
            kwargs["device_map"] = None  # as TRL: one whole model (DDP) or shard (ZeRO-3) per process, never "auto"
    path = model_args.model_name_or_path
    config = AutoConfig.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=trust_remote_code)
    if is_image_text_to_text_config(config):
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
        raise ArgumentError(f"--freeze_vision_modules: no vision parameters found in {type(model).__name__}")
    return frozen


def load_model_and_processor(
    model_args: ModelConfig, training_args: TrainingArguments, script_args
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """What every training entry starts from: the processor (left padding, the run's pixel bounds) and the model
    (vision tower frozen when `script_args.freeze_vision_modules`)."""
    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        raise ArgumentError(
            "--load_in_4bit / --load_in_8bit freeze the base model in k-bit: train LoRA adapters on it (QLoRA) with "
            "--use_peft true"
        )
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
