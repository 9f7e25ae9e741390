"""Will a recipe fit in GPU memory, and with how much headroom: a per-GPU memory plan read from the recipe itself.

Model states come from DeepSpeed's own estimator over parameters counted on the meta device; activations, the
log-prob head and generation from the recipe's shapes. A verdict names the cheapest change that makes it fit.

    python -m open_r1.plan --config data_config/geo_r_3b.yaml --nproc 8 --gpu_gib 80 [--any_recipe_key value]
    python -m open_r1.plan --table -            # every shipped recipe on 1 and 8 GPUs of 4 sizes
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"
GIB = 2**30
# What torch reports as a card's total memory (GiB) for the four sizes one rents: A10G / L4 (24 GB), A100 40 GB,
# A100 / H100 80 GB, H200 141 GB.
CARDS = {24: 22.0, 40: 39.4, 80: 79.1, 141: 139.8}
# CUDA context, NCCL's buffers and the allocator's rounding: outside torch's accounting, about this much per process.
RUNTIME_GIB = 1.0
TIGHT_SHARE = 0.9  # a plan above this share of the card is "tight": fragmentation or a longer prompt can tip it over
# TRL 1.16's fused log-prob head (trl/kernels/chunked_logprob.py): tiles of TOKEN_CHUNK tokens x VOCAB_CHUNK columns.
TOKEN_CHUNK, VOCAB_CHUNK = 4096, 32768
# Prompt text around the images (system turn, chat markup, question), in Qwen2 tokens, measured with the real
# vocabulary (tests/test_plan.py recounts them): the default geo template, and the demo recipes' "{question}".
PROMPT_TEXT_TOKENS = {None: 85, "{question}": 25}
SFT_TARGET_TOKENS = 64  # a Chain-of-Region target and its end-of-turn markup
PHOTO = (1024, 768)  # a 4:3 photo larger than the recipes' max_pixels: the processor scales it down to the bound
LLAMAFACTORY_KEYS = {"model_name_or_path", "image_max_pixels", "image_min_pixels", "finetuning_type", "lora_rank",
                     "lora_dropout", "lora_target", "freeze_vision_tower", "freeze_language_model", "deepspeed",
                     "cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "bf16",
                     "gradient_checkpointing", "quantization_bit", "use_cpu"}


# --------------------------------------------------------------------------------------------- the recipe


@dataclass
class Settings:
    """What sets a run's memory, from a recipe, its flags and the launcher's defaults."""

    recipe: str
    kind: str  # grpo | sft | llamafactory
    model: str
    model_config: Path
    nproc: int = 8
    nnodes: int = 1
    gpu_gib: float = 80.0
    deepspeed: str | None = "local_scripts/zero3.json"
    zero_stage: int = 3
    offload_optimizer: bool = False
    offload_params: bool = False
    bf16: bool = True
    micro_batch: int = 8
    grad_accum: int = 1
    steps_per_generation: int | None = None
    num_generations: int = 8
    completion_tokens: int = 512
    max_pixels: int = 401408
    min_pixels: int = 3136
    views: int = 1
    image_size: tuple[int, int] = PHOTO
    question_template: str | None = None
    gradient_checkpointing: bool = True
    freeze_vision: bool = False
    use_peft: bool = False
    lora_r: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    beta: float = 0.0
    num_iterations: int = 1
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    ds3_gather_for_generation: bool = True
    dedupe_images: bool = True
    shared_prefill: bool = True
    attn_implementation: str = "sdpa"
    device: str = "cuda"  # where the step runs: "cpu" plans TRL's torch fallback of the fused head
    num_layers: int | None = None  # a shallower model than the config's (checks at real widths)
    vision_depth: int | None = None
    max_length: int | None = None  # SFT / LLaMA-Factory: the longest sequence (cutoff_len)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return self.nproc * self.nnodes

    @property
    def generation_rows(self) -> int:
        return self.micro_batch * (self.steps_per_generation or self.grad_accum)


def _field_defaults(classes: Sequence[type]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults.setdefault(f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                defaults.setdefault(f.name, f.default_factory())
            else:
                defaults.setdefault(f.name, None)
    return defaults


@functools.cache
def _known_keys(kind: str) -> dict[str, Any]:
    """Every key the entry script of this kind accepts, with its default (read off the dataclasses, never built:
    a GRPOConfig with bf16 refuses to be built on a machine without a GPU)."""
    from trl import GRPOConfig, ModelConfig, SFTConfig

    from open_r1.configs import GRPOScriptArguments, SFTScriptArguments

    if kind == "grpo":
        return _field_defaults((GRPOScriptArguments, GRPOConfig, ModelConfig))
    return _field_defaults((SFTScriptArguments, SFTConfig, ModelConfig))


def parse_flags(flags: Sequence[str], source: str = "the command line") -> dict[str, Any]:
    """`--key value [value ...]` and `--key=value` as the launchers pass them; values read as YAML scalars."""
    out: dict[str, Any] = {}
    key = None
    for arg in flags:
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            out[key] = yaml.safe_load(value) if sep else True
            key = None if sep else key
            if key is not None:
                out[key] = []
        elif key is None:
            raise ValueError(f"{source}: '{arg}' is not a --flag or its value")
        else:
            out[key].append(yaml.safe_load(arg))
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else (True if v == [] else v)) for k, v in out.items()}


def detect_kind(recipe: dict[str, Any]) -> str:
    if "finetuning_type" in recipe or recipe.get("stage") in ("sft", "pt", "dpo", "rm", "ppo", "kto"):
        return "llamafactory"
    if "targets" in recipe or ("max_length" in recipe and "num_generations" not in recipe):
        return "sft"
    return "grpo"


def resolve_model_config(model: str, source: str) -> Path:
    """The Qwen2.5-VL config of `model`: a local folder's config.json, the shipped 3B / 7B shapes, or the tiny
    model's (built in memory when `python -m open_r1.tiny_model` has not been run)."""
    path = Path(model)
    for folder in (path, REPO / path):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    if path.suffix == ".json" and path.is_file():
        return path
    name = model.lower()
    for size in ("7b", "3b"):
        if f"-{size}" in name or f"_{size}" in name:
            return MODEL_CONFIGS / f"qwen2_5_vl_{size}.json"
    if "tiny-qwen2.5-vl" in name:
        return Path("tiny")
    raise ValueError(
        f"{source}: model_name_or_path '{model}' has no config here (not a folder with config.json, nor a "
        f"Qwen2.5-VL 3B/7B name whose shapes are in {MODEL_CONFIGS}); pass --model_config path/to/config.json"
    )


def read_deepspeed(path: str | None) -> tuple[int, bool, bool]:
    """(ZeRO stage, optimizer offloaded, parameters offloaded) of a DeepSpeed config; no config: (0, False, False)."""
    if not path:
        return 0, False, False
    file = Path(path) if Path(path).is_file() else REPO / path
    if not file.is_file():
        raise ValueError(f"--deepspeed {path}: no such DeepSpeed config")
    zero = json.loads(file.read_text()).get("zero_optimization", {})
    offload = lambda key: (zero.get(key) or {}).get("device", "none") in ("cpu", "nvme")
    return int(zero.get("stage", 0)), offload("offload_optimizer"), offload("offload_param")


def load_settings(config: str, flags: Sequence[str] = (), *, kind: str | None = None, nproc: int = 8,
                  nnodes: int = 1, gpu_gib: float = 80.0, views: int = 1, image_size: tuple[int, int] = PHOTO,
                  model_config: str | None = None) -> Settings:
    """A recipe (YAML) with flags on top, as `open_r1.grpo_jsonl` / `open_r1.sft` / LLaMA-Factory would read it.
    An unknown key, in the file or the flags, is an error naming it and where it came from."""
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"--config {config}: no such recipe")
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"{config}: a recipe is a mapping of keys to values")
    kind = kind or detect_kind(recipe)
    given = parse_flags(flags)
    if kind == "llamafactory":
        values = {**recipe, **given}
        return _llamafactory_settings(config, values, nproc, nnodes, gpu_gib, views, image_size, model_config)
    known = _known_keys(kind)
    for source, keys in ((config, recipe), ("the flags", given)):
        unknown = sorted(k for k in keys if k not in known and k != "deepspeed")
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown} for a {kind} recipe (see open_r1/configs.py and "
                             f"TRL's {'GRPOConfig' if kind == 'grpo' else 'SFTConfig'} / ModelConfig)")
    v = {**known, **recipe, **given}
    model = str(v["model_name_or_path"] or "")
    deepspeed = given.get("deepspeed", recipe.get("deepspeed", "local_scripts/zero3.json"))
    stage, off_opt, off_par = read_deepspeed(deepspeed)
    lora_targets = v.get("lora_target_modules") or ["q_proj", "v_proj"]
    dtype = str(v.get("dtype") or "")
    s = Settings(
        recipe=config, kind=kind, model=model,
        model_config=Path(model_config) if model_config else resolve_model_config(model, f"{config}"),
        nproc=nproc, nnodes=nnodes, gpu_gib=gpu_gib, deepspeed=deepspeed, zero_stage=stage,
        offload_optimizer=off_opt, offload_params=off_par,
        bf16=bool(v.get("bf16")) or dtype in ("bfloat16", "bf16", "float16", "fp16") or bool(v.get("fp16")),
        micro_batch=int(v["per_device_train_batch_size"]), grad_accum=int(v["gradient_accumulation_steps"]),
        max_pixels=int(v["max_pixels"]), min_pixels=int(v["min_pixels"]), views=views, image_size=image_size,
        question_template=v.get("question_template"), gradient_checkpointing=bool(v["gradient_checkpointing"]),
        freeze_vision=bool(v.get("freeze_vision_modules")), use_peft=bool(v.get("use_peft")),
        lora_r=int(v.get("lora_r") or 16), lora_dropout=float(v.get("lora_dropout") or 0.0),
        lora_targets=tuple([lora_targets] if isinstance(lora_targets, str) else lora_targets),
        load_in_4bit=bool(v.get("load_in_4bit")), load_in_8bit=bool(v.get("load_in_8bit")),
        attn_implementation=str(v.get("attn_implementation") or "sdpa"), overrides=given,
    )
    if kind == "grpo":
        s.steps_per_generation = v.get("steps_per_generation")
        s.num_generations = int(v["num_generations"])
        s.completion_tokens = int(v["max_completion_length"])
        s.beta, s.num_iterations = float(v["beta"]), int(v["num_iterations"])
        s.use_vllm, s.vllm_mode = bool(v["use_vllm"]), str(v["vllm_mode"])
        s.vllm_gpu_memory_utilization = float(v["vllm_gpu_memory_utilization"])
        s.ds3_gather_for_generation = bool(v["ds3_gather_for_generation"])
        s.dedupe_images, s.shared_prefill = bool(v["dedupe_images"]), bool(v["shared_prefill"])
    else:
        s.completion_tokens = SFT_TARGET_TOKENS
        s.max_length = v.get("max_length")
    return s


def _llamafactory_settings(config, v, nproc, nnodes, gpu_gib, views, image_size, model_config) -> Settings:
    unknown_method = v.get("finetuning_type", "lora") not in ("full", "lora", "freeze")
    if unknown_method:
        raise ValueError(f"{config}: finetuning_type {v.get('finetuning_type')!r} is not planned (full, lora, freeze)")
    deepspeed = v.get("deepspeed")
    stage, off_opt, off_par = read_deepspeed(deepspeed)
    model = str(v.get("model_name_or_path") or "")
    lora = v.get("finetuning_type", "lora") == "lora"
    target = v.get("lora_target", "all")
    return Settings(
        recipe=config, kind="llamafactory", model=model,
        model_config=Path(model_config) if model_config else resolve_model_config(model, config),
        nproc=nproc, nnodes=nnodes, gpu_gib=gpu_gib, deepspeed=deepspeed, zero_stage=stage,
        offload_optimizer=off_opt, offload_params=off_par, bf16=bool(v.get("bf16")),
        micro_batch=int(v.get("per_device_train_batch_size", 1)), grad_accum=int(v.get("gradient_accumulation_steps", 1)),
        max_pixels=int(v.get("image_max_pixels", 768 * 768)), min_pixels=int(v.get("image_min_pixels", 32 * 32)),
        views=views, image_size=image_size, gradient_checkpointing=bool(v.get("gradient_checkpointing", True)),
        freeze_vision=bool(v.get("freeze_vision_tower", True)), use_peft=lora, lora_r=int(v.get("lora_rank", 8)),
        lora_dropout=float(v.get("lora_dropout", 0.0)),
        # LLaMA-Factory's "all": every linear layer of the language model (the frozen vision tower's excluded)
        lora_targets=("all-linear-lm",) if target == "all" else tuple(str(target).split(",")),
        load_in_4bit=v.get("quantization_bit") == 4, load_in_8bit=v.get("quantization_bit") == 8,
        completion_tokens=SFT_TARGET_TOKENS, max_length=v.get("cutoff_len"),
        overrides={k: v[k] for k in v if k in LLAMAFACTORY_KEYS},
    )


# --------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Shapes:
    """The shapes that set a Qwen2.5-VL's compute and memory: the one shape model of the plan and of the benches
    (bench/step_cost.py counts FLOPs from it, bench/grpo_throughput.py its tokens' parameters)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    v_hidden: int
    v_intermediate: int
    v_depth: int
    v_heads: int
    v_full_blocks: int  # vision blocks with full attention (the others attend within windows)
    window: int  # the vision tower's attention window, in pixels
    merge: int
    patch: int
    temporal: int
    in_channels: int
    v_out: int  # the merger's output width (the language model's)

    @classmethod
    def from_config(cls, config: Any) -> Shapes:
        text, vis = config.text_config, config.vision_config
        return cls(
            hidden=text.hidden_size, intermediate=text.intermediate_size, layers=text.num_hidden_layers,
            heads=text.num_attention_heads, kv_heads=text.num_key_value_heads,
            head_dim=getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads,
            vocab=text.vocab_size, tied=bool(config.tie_word_embeddings), v_hidden=vis.hidden_size,
            v_intermediate=vis.intermediate_size, v_depth=vis.depth, v_heads=vis.num_heads,
            v_full_blocks=len(vis.fullatt_block_indexes), window=vis.window_size, merge=vis.spatial_merge_size,
            patch=vis.patch_size, temporal=vis.temporal_patch_size, in_channels=vis.in_channels,
            v_out=vis.out_hidden_size,
        )

    @classmethod
    def of(cls, size: str) -> Shapes:
        """The shapes of Qwen2.5-VL `size` ("3b", "7b") from src/open_r1/model_configs/."""
        return cls.from_config(load_model_config(MODEL_CONFIGS / f"qwen2_5_vl_{size}.json"))


@dataclass(frozen=True)
class ModelCounts(Shapes):
    """Shapes and parameter counts of one Qwen2.5-VL config, counted on the meta device."""

    total_params: int
    vision_params: int
    head_params: int  # the LM head's weight (the input embedding's, when tied)
    largest_layer_params: int  # the most parameters any one module holds directly (DeepSpeed's definition)
    linear_params: int  # weights of nn.Linear layers (what bitsandbytes quantizes)
    lora_shapes: tuple[tuple[str, int, int], ...]  # (module name, in, out) of every nn.Linear

    @property
    def language_params(self) -> int:
        """The parameters every language-model token passes through: its layers and the LM head (the input
        embedding is a lookup, counted only as the head it is when tied): the N of "2N FLOPs per token"."""
        return self.total_params - self.vision_params - (0 if self.tied else self.vocab * self.hidden)


def load_model_config(path: Path, num_layers: int | None = None, vision_depth: int | None = None):
    from transformers import AutoConfig, Qwen2_5_VLConfig

    if str(path) == "tiny":
        from open_r1.tiny_model import tiny_config

        config = tiny_config()
    elif path.name == "config.json":
        config = AutoConfig.from_pretrained(path.parent)
    else:
        if not path.is_file():
            raise ValueError(f"model config {path}: no such file")
        spec = json.loads(path.read_text())
        spec.pop("_comment", None)
        config = Qwen2_5_VLConfig(**spec)
    if num_layers is not None:
        config.text_config.num_hidden_layers = num_layers
        if hasattr(config.text_config, "layer_types") and config.text_config.layer_types:
            config.text_config.layer_types = config.text_config.layer_types[:num_layers]
    if vision_depth is not None:
        config.vision_config.depth = vision_depth
        config.vision_config.fullatt_block_indexes = [
            i for i in config.vision_config.fullatt_block_indexes if i < vision_depth] or [vision_depth - 1]
    return config


@functools.cache
def model_counts(config_path: Path, num_layers: int | None = None, vision_depth: int | None = None) -> ModelCounts:
    """Count a config's parameters on the meta device (nothing allocated, nothing downloaded)."""
    return config_counts(load_model_config(Path(config_path), num_layers, vision_depth))


def config_counts(config: Any) -> ModelCounts:
    """`model_counts` of a loaded config. DeepSpeed's `estimate_zero3_model_states_mem_needs_all_live` dedupes
    tied weights by `data_ptr`, which is 0 for every meta tensor, so the count is made here, once per tensor."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    seen: dict[int, tuple[str, int]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), (name, p.numel()))
    total = sum(n for _, n in seen.values())
    vision = sum(n for name, n in seen.values() if ".visual." in f".{name}")
    head = model.get_output_embeddings().weight.numel()
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    linears = tuple((name, m.in_features, m.out_features) for name, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear))
    linear_params = sum(i * o for name, i, o in linears if name != "lm_head")
    return ModelCounts(
        **vars(Shapes.from_config(config)), total_params=total, vision_params=vision, head_params=head,
        largest_layer_params=largest, linear_params=linear_params, lora_shapes=linears,
    )


def lora_params(m: ModelCounts, targets: Sequence[str], r: int) -> tuple[int, list[tuple[str, int, int]]]:
    """Adapter parameters PEFT adds for these target module names (PEFT's rule: the name or its last dotted
    parts match), and the (name, in, out) of each adapted layer."""
    adapted = []
    for name, i, o in m.lora_shapes:
        if name == "lm_head":
            continue
        if "all-linear-lm" in targets:
            hit = ".visual." not in f".{name}"
        elif "all-linear" in targets:
            hit = True
        else:
            hit = any(name == t or name.endswith("." + t) for t in targets)
        if hit:
            adapted.append((name, i, o))
    return sum(r * (i + o) for _, i, o in adapted), adapted


# --------------------------------------------------------------------------------------------- the formulas


def image_tokens(s: Settings, m: ModelCounts) -> tuple[int, int]:
    """(LM tokens, vision patches) of one photo of `s.image_size` under the recipe's pixel bounds."""
    from qwen_vl_utils import smart_resize  # the resize rule the processor, vLLM and LLaMA-Factory share

    factor = m.patch * m.merge
    h, w = smart_resize(s.image_size[1], s.image_size[0], factor=factor, min_pixels=s.min_pixels,
                        max_pixels=s.max_pixels)
    patches = (h // m.patch) * (w // m.patch)
    return patches // m.merge**2, patches


@functools.cache
def _count_text_tokens(template: str) -> int:
    from open_r1.answer.format import build_question
    from open_r1.modeling.chat_template import QWEN2_5_VL_CHAT_TEMPLATE
    from open_r1.tiny_model import build_tokenizer

    tokenizer = build_tokenizer("qwen")
    text = build_question("Where was this photo taken?", True, template)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    return len(tokenizer(chat)["input_ids"]) - 3  # the image's <|vision_start|><|image_pad|><|vision_end|>


def prompt_tokens(s: Settings, m: ModelCounts) -> int:
    """Tokens of one prompt: each view's image tokens and its two vision markers, and the text around them."""
    text = PROMPT_TEXT_TOKENS.get(s.question_template)
    if text is None:
        text = _count_text_tokens(s.question_template)
    return s.views * (image_tokens(s, m)[0] + 2) + text


def _layer_bytes(tokens: int, hidden: int, q_width: int, kv_width: int, intermediate: int, act: int) -> int:
    """Bytes one decoder (or vision) block saves for its backward, per `tokens`: both RMSNorms keep their fp32 input
    and bf16 normalised and weighted outputs (4 + 2 + 2 per element); attention keeps q, k, v (k and v repeated to
    every query head when sdpa gets a padding mask: `kv_width`), its output and o_proj's input; the gated MLP keeps
    gate, SiLU(gate), up and their product."""
    norms = 2 * (4 + 2 * act) * hidden
    attention = act * (3 * q_width + 2 * kv_width)
    mlp = 4 * act * intermediate
    return tokens * (norms + attention + mlp)


@dataclass
class Activations:
    saved: int  # what the forward keeps for the backward
    recompute: int  # one block recomputed in the backward (gradient checkpointing)
    mask: int

    @property
    def kept(self) -> int:
        return self.saved + self.mask

    @property
    def total(self) -> int:
        return self.saved + self.recompute + self.mask


def activation_bytes(s: Settings, m: ModelCounts, *, checkpointing: bool | None = None, rows: int | None = None,
                     prompt: int | None = None, completion: int | None = None) -> Activations:
    """The policy pass's activations at the micro-batch: language model and (when trained) vision tower."""
    ckpt = s.gradient_checkpointing if checkpointing is None else checkpointing
    act = 2 if s.bf16 else 4
    rows = s.micro_batch if rows is None else rows
    prompt = prompt_tokens(s, m) if prompt is None else prompt
    completion = s.completion_tokens if completion is None else completion
    seq = prompt + completion
    if s.max_length:
        seq = min(seq, s.max_length)
    tokens = rows * seq
    q_width = m.heads * m.head_dim
    flash = s.attn_implementation.startswith("flash")
    kv_width = m.kv_heads * m.head_dim if flash else q_width
    layer = _layer_bytes(tokens, m.hidden, q_width, kv_width, m.intermediate, act)
    adapted = lora_params(m, s.lora_targets, s.lora_r)[1] if s.use_peft else []
    if s.lora_dropout > 0:  # each adapted layer's dropout keeps its masked input and the mask
        first = [i for name, i, _ in adapted if ".layers.0." in name and ".visual." not in f".{name}"]
        layer += tokens * sum(first) * (act + 1)
    lm_saved = m.layers * (tokens * m.hidden * act if ckpt else layer)
    recompute = layer if ckpt else 0
    lm_saved += tokens * m.hidden * (4 + 2 * act)  # the final norm
    vision_saved = 0
    vision_trained = any(".visual." in f".{name}" for name, _, _ in adapted) if s.use_peft else not s.freeze_vision
    if vision_trained:
        distinct = -(-rows // s.num_generations) if (s.kind == "grpo" and s.dedupe_images) else rows
        patches = distinct * s.views * image_tokens(s, m)[1]
        block = _layer_bytes(patches, m.v_hidden, m.v_hidden, m.v_hidden, m.v_intermediate, act)
        vision_saved = m.v_depth * (patches * m.v_hidden * act if ckpt else block)
        vision_saved += patches * m.temporal * m.patch**2 * 3 * act  # the patch embedding's input
        if ckpt:
            recompute = max(recompute, block)
    mask = 0 if flash else rows * seq * seq  # sdpa's boolean padding mask, shared by every layer
    return Activations(saved=lm_saved + vision_saved, recompute=recompute, mask=mask)


def head_bytes(s: Settings, m: ModelCounts, *, rows: int | None = None, completion: int | None = None,
               prompt: int | None = None, fused: bool | None = None) -> int:
    """The log-prob head over the vocabulary at its backward peak.

    GRPO (TRL 1.16's fused head, always on): only completion positions are projected, in tiles of 4,096 tokens x
    32,768 vocabulary columns; it keeps the completion's hidden states, and its backward accumulates the hidden
    states' and (when trained) the head weight's gradients in fp32, then casts them back. Where Triton does not run
    (`s.device` "cpu"), TRL's torch fallback folds each tile through fp32 copies (geo-r's trainer keeps it to the
    completion positions there too: `open_r1.compat.score_completion_tokens_only`). SFT and
    LLaMA-Factory (the model's own loss): bf16 logits over every position, their fp32 upcast and log-softmax, and
    its fp32 gradient (14 bytes per logit)."""
    act = 2 if s.bf16 else 4
    rows = s.micro_batch if rows is None else rows
    completion = s.completion_tokens if completion is None else completion
    prompt = prompt_tokens(s, m) if prompt is None else prompt
    seq = prompt + completion
    if s.max_length:
        seq = min(seq, s.max_length)
    fused = (s.kind == "grpo") if fused is None else fused
    if not fused:
        positions = rows * completion if s.kind == "grpo" else rows * seq  # TRL before its fused head: completions
        return positions * m.vocab * (act + 4 + 4 + 4)
    cpu = s.device == "cpu"
    n = rows * completion
    tile_rows = min(n, TOKEN_CHUNK)
    common = n * m.hidden * act + n * m.hidden * 4  # the kept hidden states, their fp32 gradient
    weight_grad = m.head_params * 4 if not s.use_peft else 0
    loop = common + weight_grad + tile_rows * VOCAB_CHUNK * act
    if cpu:  # the torch fold of a tile's gradient: the tile in fp32, scaled, log-probs, probs, gradient, 2 temporaries
        loop += 7 * tile_rows * VOCAB_CHUNK * 4
    end = common + n * m.hidden * act + (weight_grad // 4) * (4 + act)
    return max(loop, end)


@dataclass
class ModelStates:
    params: float
    grads: float
    optimizer: float
    gathered: float  # ZeRO-3: the largest layer's 16-bit parameters and gradients, gathered whole
    deepspeed_estimate: int | None  # DeepSpeed's own figure, where its estimator applies (every parameter trained)
    cpu_bytes: int = 0

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.gathered


def trainable_params(s: Settings, m: ModelCounts) -> int:
    if s.use_peft:
        return lora_params(m, s.lora_targets, s.lora_r)[0]
    return m.total_params - (m.vision_params if s.freeze_vision else 0)


def deepspeed_estimate(s: Settings, m: ModelCounts) -> tuple[int, int]:
    """(GPU bytes, CPU bytes) per GPU from DeepSpeed's count-based estimators, every parameter trained."""
    from open_r1.compat import estimate_zero2_model_states_mem_needs, estimate_zero3_model_states_mem_needs

    if s.zero_stage == 3:
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            m.total_params, m.largest_layer_params, num_gpus_per_node=s.nproc, num_nodes=s.nnodes,
            cpu_offload=s.offload_optimizer, cpu_offload_params=s.offload_params, zero_init=True,
            additional_buffer_factor=1.5)
        return gpu, cpu
    cpu, gpu = estimate_zero2_model_states_mem_needs(
        m.total_params, num_gpus_per_node=s.nproc, num_nodes=s.nnodes, cpu_offload=s.offload_optimizer,
        additional_buffer_factor=1.5)
    return gpu, cpu


def model_state_bytes(s: Settings, m: ModelCounts) -> ModelStates:
    """Parameters, gradients and optimizer per GPU. Mixed precision (bf16) as DeepSpeed counts it: 16-bit
    parameters (2 bytes), then per trained parameter 18 bytes = 16- and 32-bit gradients (6) + fp32 master copy and
    Adam's two moments (12); ZeRO-2 partitions the 18, ZeRO-3 the 2 as well and gathers one layer at a time (4 bytes
    per parameter of the largest). Frozen parameters keep their 2 bytes only; k-bit ones about half a byte (4-bit)
    or one (8-bit), whole on every GPU. Without bf16: fp32 parameters and gradients, Adam's moments (16 bytes)."""
    n = s.gpus
    trained = trainable_params(s, m)
    p_all = m.total_params
    if s.load_in_4bit or s.load_in_8bit:
        per_weight = 0.516 if s.load_in_4bit else 1.03  # nf4 with double-quantised scales; int8 with row scales
        base = m.linear_params * per_weight + (p_all - m.linear_params) * 2
        ds = 18 * trained / (n if s.zero_stage >= 2 else 1)
        return ModelStates(base, ds * 6 / 18, ds * 12 / 18, 0.0, None)
    mixed = s.bf16
    p16, grad_b, opt_b = (2, 6 if s.zero_stage < 3 else 4, 12) if mixed else (4, 4, 8)
    partition = n if s.zero_stage >= 2 else 1
    if s.zero_stage == 3:
        params = 0.0 if s.offload_params else p16 * p_all / n
        gathered = 2 * p16 * m.largest_layer_params
    else:
        params, gathered = float(p16 * p_all), 0.0
    grads = 0.0 if s.offload_optimizer else grad_b * trained / partition
    opt = 0.0 if s.offload_optimizer else opt_b * trained / partition
    if s.zero_stage == 3 and not mixed:
        params, grads = p16 * p_all / n, grad_b * trained / n
    if s.zero_stage == 0 and mixed:  # no DeepSpeed: bf16 weights, bf16 gradients and AdamW moments in bf16
        grads, opt = 2 * trained, 4 * trained
    estimate, cpu = (None, 0)
    if s.zero_stage in (2, 3) and mixed:
        estimate, cpu = deepspeed_estimate(s, m)
        if trained == p_all:  # DeepSpeed's own figure, to the byte
            scale = estimate / (params + grads + opt + gathered)
            params, grads, opt, gathered = (x * scale for x in (params, grads, opt, gathered))
    return ModelStates(params, grads, opt, gathered, estimate if trained == p_all else None, cpu)


def kv_cache_bytes(s: Settings, m: ModelCounts) -> int:
    """The KV cache of one generation batch: every completion at its longest."""
    act = 2 if s.bf16 else 4
    return 2 * m.layers * s.generation_rows * (prompt_tokens(s, m) + s.completion_tokens) * m.kv_heads * m.head_dim * act


def vllm_needs(s: Settings, m: ModelCounts) -> int:
    """What vLLM's colocated share must hold: the 16-bit weights, the batch's KV cache, and its own activations and
    CUDA graphs (1 GiB)."""
    return 2 * m.total_params + kv_cache_bytes(s, m) + GIB


def generation_bytes(s: Settings, m: ModelCounts) -> tuple[int, str]:
    """(bytes, what) the generation phase adds on top of the model states."""
    if s.kind != "grpo":
        return 0, "none (supervised)"
    if s.use_vllm and s.vllm_mode == "colocate":
        reserved = s.vllm_gpu_memory_utilization * s.gpu_gib * GIB
        what = f"vLLM colocate: {s.vllm_gpu_memory_utilization:g} x {s.gpu_gib:g} GiB, reserved"
        if reserved < vllm_needs(s, m):
            what += f"; TOO SMALL for the weights and KV cache ({vllm_needs(s, m) / GIB:.1f} GiB)"
        return int(reserved), what
    if s.use_vllm:
        return 0, "vLLM server: on its own GPUs"
    act = 2 if s.bf16 else 4
    rows, prompt = s.generation_rows, prompt_tokens(s, m)
    kv = kv_cache_bytes(s, m)
    prefill_rows = -(-rows // s.num_generations) if s.shared_prefill else rows
    tokens = prefill_rows * prompt
    prefill = tokens * act * (3 * m.intermediate + 2 * m.heads * m.head_dim + 2 * m.hidden) + prefill_rows * prompt**2
    logits = rows * m.vocab * 4 * 3  # the last position's fp32 logits, the processors' copy and the softmax
    gathered = 0
    if s.zero_stage == 3 and s.ds3_gather_for_generation and not s.load_in_4bit and not s.load_in_8bit:
        gathered = 2 * m.total_params  # every 16-bit parameter gathered for `generate`
    what = f"transformers: KV cache of {rows} completions x {prompt + s.completion_tokens} tokens"
    if gathered:
        what += ", ZeRO-3 weights gathered"
    return kv + prefill + logits + gathered, what


def reference_bytes(s: Settings, m: ModelCounts) -> tuple[int, str]:
    if s.kind != "grpo" or s.beta == 0:
        extra = " (old log-probs: the policy itself, without gradients)" if s.num_iterations > 1 else ""
        return 0, "none (beta 0)" + extra
    if s.use_peft:
        return 0, f"beta {s.beta:g}: the base model, adapters disabled"
    per = 2 if s.bf16 else 4
    if s.zero_stage == 3:
        return per * m.total_params // s.gpus + 2 * per * m.largest_layer_params, f"beta {s.beta:g}: ZeRO-3 shard"
    return per * m.total_params, f"beta {s.beta:g}: a whole copy per GPU"


# --------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    settings: Settings
    counts: ModelCounts
    prompt: int
    rows: list[tuple[str, float, str]]  # (name, GiB, note)
    total_gib: float
    card_gib: float
    verdict: str
    remedy: str | None = None

    @property
    def headroom_gib(self) -> float:
        return self.card_gib - self.total_gib

    def row(self, name: str) -> float:
        return next(g for n, g, _ in self.rows if n == name)


def _verdict(total: float, card: float) -> str:
    if total <= TIGHT_SHARE * card:
        return "fits"
    return "tight" if total <= card else "does not fit"


def plan(s: Settings, *, remedy: bool = True) -> Plan:
    """The per-GPU memory plan of a run."""
    m = model_counts(Path(s.model_config), s.num_layers, s.vision_depth)
    prompt = prompt_tokens(s, m)
    states = model_state_bytes(s, m)
    acts = activation_bytes(s, m)
    other = activation_bytes(s, m, checkpointing=not s.gradient_checkpointing)
    head = head_bytes(s, m)
    unfused = head_bytes(s, m, fused=False) if s.kind == "grpo" else head
    gen, gen_what = generation_bytes(s, m)
    ref, ref_what = reference_bytes(s, m)
    zero = f"ZeRO-{s.zero_stage}" if s.zero_stage else "no ZeRO"
    off = " + offload" + (" (optimizer, parameters)" if s.offload_params else " (optimizer)") if s.offload_optimizer else ""
    trained = trainable_params(s, m)
    ds = (f"; DeepSpeed's estimator: {states.deepspeed_estimate / GIB:.2f}" if states.deepspeed_estimate else "")
    seq = prompt + s.completion_tokens if not s.max_length else min(prompt + s.completion_tokens, s.max_length)
    ckpt = "on" if s.gradient_checkpointing else "off"
    head_note = ("TRL's fused chunked head" + (f"; full logits: {unfused / GIB:.2f}" if s.kind == "grpo" else "")
                 if s.kind == "grpo" else "full logits, fp32 loss")
    rows = [
        ("parameters", states.params / GIB, f"{m.total_params / 1e9:.2f} B, {zero}{off}, {s.gpus} GPU(s)"),
        ("gradients", states.grads / GIB, f"{trained / 1e9:.3f} B trained"
         + (" (LoRA)" if s.use_peft else " (vision frozen)" if s.freeze_vision else "")),
        ("optimizer", states.optimizer / GIB, ("fp32 master + Adam moments" if s.bf16 and s.zero_stage else
                                                "Adam moments in the parameters' dtype") + ds),
        ("gathered layer", states.gathered / GIB, "ZeRO-3: the largest layer whole" if s.zero_stage == 3 else ""),
        ("activations", acts.kept / GIB, f"kept for the backward: {s.micro_batch} rows x {seq} tokens, "
         f"checkpointing {ckpt} ({'off' if s.gradient_checkpointing else 'on'}: {other.kept / GIB:.2f}), "
         f"{s.attn_implementation}"),
        ("backward peak", max(head, acts.recompute) / GIB,
         f"the larger of the log-prob head over {m.vocab:,} tokens ({head / GIB:.2f}, {head_note}) and one layer "
         f"recomputed ({acts.recompute / GIB:.2f})"),
        ("generation", gen / GIB, gen_what),
        ("reference model", ref / GIB, ref_what),
        ("runtime", RUNTIME_GIB, "CUDA context, NCCL, allocator"),
    ]
    # generation (transformers) and the policy pass come one after the other: the larger phase counts; vLLM's share
    # stays reserved through both
    colocated = s.kind == "grpo" and s.use_vllm and s.vllm_mode == "colocate"
    training = acts.kept + max(head, acts.recompute)
    total = sum(g for _, g, _ in rows) - (0 if colocated else min(gen, training) / GIB)
    verdict = _verdict(total, s.gpu_gib)
    if s.kind == "grpo" and s.use_vllm and s.vllm_mode == "colocate" and gen < vllm_needs(s, m):
        verdict = "does not fit"  # vLLM cannot load the model into its share
    p = Plan(s, m, prompt, rows, total, s.gpu_gib, verdict)
    if remedy and p.verdict != "fits":
        p.remedy = find_remedy(s)
    return p


def _remedies(s: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Changes in the order of what they cost (speed first, then image detail, then the method), as flags."""
    out: list[tuple[str, dict[str, Any]]] = []
    if s.kind == "grpo" and s.use_vllm and s.vllm_mode == "colocate":
        need = vllm_needs(s, model_counts(Path(s.model_config), s.num_layers, s.vision_depth)) / (s.gpu_gib * GIB)
        share = math.ceil(need * 20) / 20
        if share > s.vllm_gpu_memory_utilization and share < 0.9:
            out.append(("vLLM's share raised to hold the weights and KV cache", {"vllm_gpu_memory_utilization": share}))
    if not s.gradient_checkpointing:
        out.append(("gradient checkpointing (about a third slower backward)", {"gradient_checkpointing": True}))
    b, ga = s.micro_batch, s.grad_accum
    while b > 1:
        b, ga = b // 2, ga * 2
        keys = {"per_device_train_batch_size": b, "gradient_accumulation_steps": ga}
        out.append((f"micro-batch {b} with {ga} accumulation steps (the same batch)", keys))
    px = s.max_pixels
    for _ in range(3):
        px //= 2
        out.append((f"max_pixels {px} (fewer image tokens)", {"max_pixels": px}))
    if s.kind == "grpo" and s.use_vllm:
        out.append(("transformers generation instead of vLLM (slower generation)", {"use_vllm": False}))
    if s.zero_stage == 3 and not s.offload_optimizer:
        out.append(("ZeRO-3 with CPU offload (slower steps)", {"deepspeed": "local_scripts/zero3_offload.json"}))
    if not s.use_peft:
        out.append(("LoRA r 64 under ZeRO-2 (run_scripts/run_grpo_rec_lora.sh)",
                    {"use_peft": True, "lora_r": 64, "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                     "gate_proj", "up_proj", "down_proj"], "deepspeed": "local_scripts/zero2.json"}))
    return out


def apply_flags(s: Settings, keys: dict[str, Any]) -> Settings:
    """The same run with these recipe keys changed (what `--key value` flags would do)."""
    flags: list[str] = []
    for k, v in {**s.overrides, **keys}.items():
        flags.append(f"--{k}")
        flags += [str(x) for x in v] if isinstance(v, list) else [str(v).lower() if isinstance(v, bool) else str(v)]
    if s.kind == "llamafactory":
        raise ValueError("remedies are planned for geo-r's own recipes; edit the LLaMA-Factory yaml")
    new = load_settings(s.recipe, flags, kind=s.kind, nproc=s.nproc, nnodes=s.nnodes, gpu_gib=s.gpu_gib,
                        views=s.views, image_size=s.image_size, model_config=str(s.model_config))
    new.device, new.num_layers, new.vision_depth = s.device, s.num_layers, s.vision_depth
    return new


def remedy_flags(keys: dict[str, Any]) -> str:
    parts = []
    for k, v in keys.items():
        value = " ".join(map(str, v)) if isinstance(v, list) else (str(v).lower() if isinstance(v, bool) else v)
        parts.append(f"--{k} {value}")
    return " ".join(parts)


def find_remedy(s: Settings) -> str:
    """The first change (in order of cost) after which the plan fits; else the first that makes it tight."""
    if s.kind == "llamafactory":
        return "edit the yaml: lower per_device_train_batch_size, image_max_pixels or cutoff_len, or use LoRA"
    tight = None
    for what, keys in _remedies(s):
        p = plan(apply_flags(s, keys), remedy=False)
        line = f"{what}: {remedy_flags(keys)} -> {p.total_gib:.1f} GiB"
        if p.verdict == "fits":
            return line
        tight = tight or (line + " (tight)" if p.verdict == "tight" else None)
    return tight or "no single change fits: more GPUs (ZeRO-3 shards the model states), or a larger card"


def _short(path: str) -> str:
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path


def format_plan(p: Plan) -> str:
    s = p.settings
    m = p.counts
    head = (f"{_short(s.recipe)} ({s.kind}, {Path(str(s.model_config)).stem}), {s.gpus} GPU(s) of {s.gpu_gib:g} GiB, "
            f"{s.views} view(s) of {s.image_size[0]}x{s.image_size[1]} -> {image_tokens(s, m)[0]} image tokens each, "
            f"prompt {p.prompt} tokens")
    lines = [head, f"{'per GPU':<17}{'GiB':>8}"]
    for name, gib, note in p.rows:
        lines.append(f"  {name:<15}{gib:>8.2f}  {note}")
    apart = p.settings.kind == "grpo" and not (p.settings.use_vllm and p.settings.vllm_mode == "colocate")
    lines.append(f"  {'total':<15}{p.total_gib:>8.2f}" + ("  generation and the policy pass come one after the other: "
                                                          "the larger of the two counts" if apart else ""))
    lines.append(f"  {'card':<15}{p.card_gib:>8.2f}")
    lines.append(f"  {'headroom':<15}{p.headroom_gib:>8.2f}  ({p.headroom_gib / p.card_gib:.0%} of the card)")
    lines.append(f"verdict: {p.verdict}" + (f"; cheapest change that fits: {p.remedy}" if p.remedy else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the table

SHIPPED = [
    # (label, recipe, flags, views)
    ("geo_r_3b.yaml (GRPO, vLLM colocate)", "data_config/geo_r_3b.yaml", [], 1),
    ("geo_r_3b.yaml, 4 views", "data_config/geo_r_3b.yaml", [], 4),
    ("geo_r_3b.yaml, transformers generation (no vLLM)", "data_config/geo_r_3b.yaml", ["--use_vllm", "false"], 1),
    ("geo_r_3b.yaml, flash-attn", "data_config/geo_r_3b.yaml", ["--attn_implementation", "flash_attention_2"], 1),
    ("geo_r_3b.yaml with MODEL=Qwen2.5-VL-7B", "data_config/geo_r_3b.yaml",
     ["--model_name_or_path", "Qwen/Qwen2.5-VL-7B-Instruct"], 1),
    ("run_grpo_rec_lora.sh (LoRA r 64, ZeRO-2)", "data_config/geo_r_3b.yaml",
     ["--use_peft", "true", "--lora_r", "64", "--lora_alpha", "128", "--lora_dropout", "0.05", "--lora_target_modules",
      "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "--learning_rate", "1e-5",
      "--deepspeed", "local_scripts/zero2.json"], 1),
    ("sft_3b.yaml (SFT warm start)", "data_config/sft_3b.yaml", [], 1),
    ("sft_3b.yaml, 4 views", "data_config/sft_3b.yaml", [], 4),
    ("llamafactory/qwen2_5_vl_full_sft.yaml", "local_scripts/llamafactory/qwen2_5_vl_full_sft.yaml", [], 4),
    ("llamafactory/qwen2_5_vl_lora_sft.yaml", "local_scripts/llamafactory/qwen2_5_vl_lora_sft.yaml", [], 4),
    ("demo.yaml (tiny model)", "data_config/demo.yaml", [], 1),
    ("sft_demo.yaml (tiny model)", "data_config/sft_demo.yaml", [], 1),
]


def markdown_table(nprocs: Sequence[int] = (1, 8), cards: Sequence[int] = tuple(CARDS)) -> str:
    """Every shipped recipe on 1 and 8 GPUs of each card size: total GiB per GPU and the verdict."""
    head = "| recipe | GPUs | " + " | ".join(f"{c} GB ({CARDS[c]:g} GiB)" for c in cards) + " |"
    lines = [head, "|" + "---|" * (2 + len(cards))]
    remedies: list[str] = []
    for label, recipe, flags, views in SHIPPED:
        for n in nprocs:
            cells = []
            for c in cards:
                p = plan(load_settings(str(REPO / recipe), flags, nproc=n, gpu_gib=CARDS[c], views=views))
                mark = {"fits": "fits", "tight": "**tight**", "does not fit": "**does not fit**"}[p.verdict]
                short = " (vLLM's share too small)" if p.verdict == "does not fit" and p.total_gib <= p.card_gib else ""
                cells.append(f"{p.total_gib:.1f} {mark}{short}")
                if p.remedy:
                    remedies.append(f"- {label}, {n} x {c} GB: {p.remedy}")
            lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\nThe cheapest change that fits, where a recipe does not:\n\n" + "\n".join(remedies)
                               if remedies else "")


def _check_rows(path: Path) -> list[str]:
    """bench/memory_check.py's measured-vs-planned figures, as table rows."""
    if not path.is_file():
        return ["(no measurements yet: `python bench/memory_check.py` appends them to bench/results/memory_check.jsonl)"]
    lines = ["| views | completion | rows | checkpointing | prompt | measured GiB | planned GiB | planned / measured |",
             "|---|---|---|---|---|---|---|---|"]
    for line in path.read_text().splitlines():
        r = json.loads(line)
        lines.append(f"| {r['views']} | {r['completion']} | {r['rows']} | {'on' if r['checkpointing'] else 'off'} | "
                     f"{r['prompt_tokens']} | {r['measured_bytes'] / GIB:.3f} | {r['planned_bytes'] / GIB:.3f} | "
                     f"{r['ratio']:.3f} |")
    return lines


def _attention_note() -> str:
    recipe = str(REPO / "data_config/geo_r_3b.yaml")
    kept = {}
    for attn in ("sdpa", "flash_attention_2"):
        for ckpt in ("true", "false"):
            s = load_settings(recipe, ["--attn_implementation", attn, "--gradient_checkpointing", ckpt])
            kept[attn, ckpt] = activation_bytes(s, model_counts(Path(s.model_config))).kept / GIB
    return (f"flash-attn against sdpa (geo_r_3b.yaml, 8 rows of 1,093 tokens): the activations kept for the backward "
            f"are {kept['flash_attention_2', 'true']:.2f} against {kept['sdpa', 'true']:.2f} GiB with gradient "
            f"checkpointing, {kept['flash_attention_2', 'false']:.1f} against {kept['sdpa', 'false']:.1f} GiB without "
            "(sdpa with a padding mask repeats k and v to every query head and keeps the mask; flash-attn does neither). "
            "Without a prebuilt flash-attn wheel `setup.sh --gpu` says so and the recipes run on sdpa.")


def markdown_document() -> str:
    """docs/memory_plan.md: the table of every shipped recipe, one plan in full, and the check of the formulas."""
    example = plan(load_settings(str(REPO / "data_config/geo_r_3b.yaml"), nproc=8, gpu_gib=CARDS[80]))
    parts = [
        "# Memory plan of the shipped recipes",
        "",
        "Generated by `python -m open_r1.plan --table docs/memory_plan.md`; plan any recipe with your own flags and",
        "card with `python -m open_r1.plan --config RECIPE --nproc 8 --gpu_gib 80 [--key value ...]`.",
        "",
        "Per GPU, in GiB, for one 1024x768 photo per row unless the row says 4 views (494 image tokens each at",
        "`max_pixels` 401408). Model states are DeepSpeed's own estimate (`estimate_zero3_model_states_mem_needs`,",
        "`estimate_zero2_model_states_mem_needs`) over parameters counted on the meta device, with frozen and LoRA",
        "parameters counted apart; activations, TRL's log-prob head, generation (vLLM's reserved share, or the KV cache",
        "and ZeRO-3's gathered weights under transformers generation) and the reference model come from the recipe's",
        f"shapes; {RUNTIME_GIB:g} GiB is added for the CUDA context and NCCL. \"fits\": at most {TIGHT_SHARE:.0%} of",
        "the card; \"tight\": within the card. The card sizes are what torch reports for A10G / L4, A100 40 GB,",
        "A100 / H100 80 GB and H200.",
        "",
        markdown_table(),
        "",
        "LLaMA-Factory recipes are planned for 4 views at their `cutoff_len`; the grpo_variants overlays change no key",
        "that moves memory, so they plan as the recipe they overlay (their own model line is the tiny model).",
        "",
        _attention_note(),
        "",
        "## One plan in full: geo_r_3b.yaml on 8 x 80 GB",
        "",
        "```",
        format_plan(example),
        "```",
        "",
        "## The formulas against torch's accounting",
        "",
        "`python bench/memory_check.py` runs the policy pass of a GRPO step as TRL 1.16 runs it (fused log-prob head on",
        "the completion tokens, image dedupe, a padded batch, sdpa, bf16) on a Qwen2.5-VL at the real 3B widths and",
        "vocabulary but 2 decoder layers and 2 vision blocks, on a CPU, and records the peak of everything but the",
        "parameters and their gradients with torch's MemTracker; the planner's figure is its activations plus the",
        "backward peak (log-prob head or one recomputed layer) for the same shapes. On a CPU TRL's head folds its",
        "tiles through fp32 copies (Triton does it in place on a GPU), which the planner adds for `device` cpu;",
        "`bench/gpu_check.sh` makes the same comparison on a GPU at full depth with `torch.cuda.max_memory_allocated`.",
        "",
        *_check_rows(REPO / "bench/results/memory_check.jsonl"),
    ]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the recipe (YAML): data_config/*.yaml or a LLaMA-Factory yaml")
    parser.add_argument("--nproc", type=int, default=8, help="GPUs per node (processes)")
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--gpu_gib", type=float, default=80.0, help="the card's memory, GiB")
    parser.add_argument("--views", type=int, default=1, help="photos per row")
    parser.add_argument("--image_size", default=f"{PHOTO[0]}x{PHOTO[1]}", help="the photos' size, WxH")
    parser.add_argument("--kind", choices=["grpo", "sft", "llamafactory"], help="default: read off the recipe")
    parser.add_argument("--model_config", help="a config.json for a model the planner does not know by name")
    parser.add_argument("--table", metavar="OUT.md", help="write the plan of every shipped recipe to this file ('-': print it)")
    args, flags = parser.parse_known_args(argv)
    if args.table == "-":
        print(markdown_document())
        return 0
    if args.table:
        Path(args.table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.table).write_text(markdown_document())
        print(f"wrote {args.table}")
        return 0
    if not args.config:
        parser.error("--config RECIPE (or --table OUT.md)")
    try:
        width, height = (int(x) for x in args.image_size.lower().split("x"))
        s = load_settings(args.config, flags, kind=args.kind, nproc=args.nproc, nnodes=args.nnodes,
                          gpu_gib=args.gpu_gib, views=args.views, image_size=(width, height),
                          model_config=args.model_config)
        print(format_plan(plan(s)))
    except ValueError as err:
        print(f"open_r1.plan: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
