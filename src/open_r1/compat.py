"""The one place geo-r touches what transformers, TRL, accelerate and DeepSpeed do not promise to keep: private
(underscore) methods and attributes, state their classes keep for themselves, and names their packages do not
export. Each is reached through one small function or constant here, and listed in `INTERNALS` with why geo-r
needs it; `tests/test_compat.py` checks that every one still exists with the parameters geo-r passes, and names
the internal and the pinned version when an upgrade moves it. Elsewhere, `tests/test_import_rules.py` forbids
them.

Checked against the versions in `CHECKED` (requirements.txt pins them). Upstream packages are imported inside
the functions, so reading this module (the import-rules test does) costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

CHECKED = {"transformers": "5.17.0", "trl": "1.16.0", "accelerate": "1.15.0", "deepspeed": "0.19.8"}

# the GRPOTrainer methods geo-r wraps on an instance (and bench/grpo_throughput.py times)
CALCULATE_REWARDS = "_calculate_rewards"
GENERATE = "_generate"
PREPARE_INPUTS = "_prepare_inputs"


@dataclass(frozen=True)
class Internal:
    """One upstream name geo-r relies on. `owner` is "module" or "module:Class"; `kind` is "callable" (checked:
    it exists, is callable and takes `params`), "attribute" (a class or module attribute that exists) or
    "instance attribute" (one the class's own source assigns as `self.<name>`)."""

    owner: str
    name: str
    kind: str
    why: str
    params: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return self.owner.split(":")[0].split(".")[0]

    def __str__(self) -> str:
        return f"{self.owner}.{self.name}" if ":" in self.owner else f"{self.owner}:{self.name}"


_QWEN25 = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl:Qwen2_5_VLForConditionalGeneration"
_QWEN2 = "transformers.models.qwen2_vl.modeling_qwen2_vl:Qwen2VLForConditionalGeneration"
_GRPO = "trl.trainer.grpo_trainer:GRPOTrainer"

INTERNALS: tuple[Internal, ...] = (
    Internal("transformers.generation.utils:GenerationMixin", "_prepare_generation_config", "callable",
             "shared prefill: the config `generate` will use, to tell whether it can take the call",
             ("generation_config",)),
    *(Internal(owner, "_get_image_nums_and_video_nums", "callable",
               "shared prefill: each row's image count, to split pixel values by row", ("input_ids",))
      for owner in (_QWEN25, _QWEN2)),
    *(Internal(owner, "_prepare_position_ids_for_generation", "callable",
               "shared prefill: the 3D rotary positions `generate` computes for the distinct prompts",
               ("inputs_tensor", "model_kwargs"))
      for owner in (_QWEN25, _QWEN2)),
    *(Internal(owner.replace("ForConditionalGeneration", "Model"), "rope_deltas", "instance attribute",
               "shared prefill: the rotary offsets of the distinct prompts, gathered to the batch")
      for owner in (_QWEN25, _QWEN2)),
    Internal("transformers:AutoModelForImageTextToText", "_model_mapping", "attribute",
             "loading: whether a checkpoint's config is an image-text-to-text model (TRL's default class is not)"),
    Internal("transformers.integrations.deepspeed", "_hf_deepspeed_config_weak_ref", "attribute",
             "SFT LoRA merge: restore the ZeRO-3 config after loading the base with whole weights on one process"),
    Internal("transformers.integrations.deepspeed", "unset_hf_deepspeed_config", "callable",
             "SFT LoRA merge: load the base with whole weights while a ZeRO-3 run is configured"),
    Internal("transformers.utils", "find_adapter_config_file", "callable",
             "evaluation: find a hub or local LoRA adapter's config (not exported at the top level)",
             ("model_id", "revision")),
    Internal("transformers.convert_slow_tokenizer", "TikTokenConverter", "callable",
             "tiny model: the real Qwen2 vocabulary from its tiktoken file (not exported at the top level)",
             ("vocab_file", "pattern")),
    Internal("deepspeed.runtime.zero.stage3", "estimate_zero3_model_states_mem_needs", "callable",
             "memory plan: DeepSpeed's own ZeRO-3 model-state estimate, beside geo-r's",
             ("total_params", "largest_layer_params", "num_gpus_per_node", "num_nodes", "cpu_offload",
              "cpu_offload_params", "zero_init", "additional_buffer_factor")),
    Internal("deepspeed.runtime.zero.stage_1_and_2", "estimate_zero2_model_states_mem_needs", "callable",
             "memory plan: DeepSpeed's own ZeRO-2 model-state estimate, beside geo-r's",
             ("total_params", "num_gpus_per_node", "num_nodes", "cpu_offload", "additional_buffer_factor")),
    Internal("trl.trainer.utils", "create_model_from_path", "callable",
             "loading: TRL's own model loading (dtype, device map, ZeRO-3), not exported by trl", ("model_id",
                                                                                                  "architecture")),
    Internal("trl.trainer.sft_trainer", "DataCollatorForVisionLanguageModeling", "callable",
             "SFT on tool episodes: TRL's vision collator, wrapped to train on the assistant turns only",
             ("processor", "max_length")),
    Internal("trl.chat_template_utils", "parse_response", "callable",
             "evaluation with tools: the tool-call parser GRPO training uses, not exported by trl",
             ("tokenizer", "ids", "prefix", "tools")),
    Internal(_GRPO, CALCULATE_REWARDS, "callable",
             "frac_reward_flat_groups: read every step's gathered rewards (wrapped on the instance)",
             ("inputs", "prompts", "completions", "completion_ids_list")),
    Internal(_GRPO, GENERATE, "callable", "bench/grpo_throughput.py: time generation apart (wrapped)", ("prompts",)),
    Internal(_GRPO, "_metrics", "instance attribute",
             "frac_reward_flat_groups: logged with the step's other metrics, averaged as TRL averages them"),
    Internal(_GRPO, "_log_metric", "callable",
             "scheduled reward weights: logged through the hook TRL gives reward functions", ("name", "value")),
    *(Internal("trl.trainer.utils:RepeatSampler", name, "instance attribute", f"epoch reseeding: {why}")
      for name, why in (("seed", "the sampler's seed, to draw epoch e's order from (seed + e)"),
                        ("generator", "the sampler's own generator, run on from epoch to epoch (no set_epoch)"))),
    Internal(_GRPO, PREPARE_INPUTS, "callable",
             "length-aware micro-batches: regroup the generation batch TRL has just buffered (wrapped)",
             ("generation_batch",)),
    Internal(_GRPO, "_buffered_inputs", "instance attribute",
             "length-aware micro-batches: the generation batch's micro-batches, replaced by the regrouped ones"),
    Internal(_GRPO, "aux_loss_enabled", "instance attribute",
             "length-aware micro-batches: the MoE auxiliary loss is a per-micro-batch mean (plain path kept)"),
    *(Internal("trl.trainer.utils", name, "callable",
               f"length-aware micro-batches: {why} (not exported by trl)", ("batch",))
      for name, why in (("split_pixel_values_by_grid", "one pixel tensor per row, to reorder rows"),
                        ("unsplit_pixel_values_by_grid", "a micro-batch's pixel rows back in one tensor"))),
    Internal("trl.trainer.utils", "_use_triton", "callable",
             "CPU runs: TRL's fused log-prob head scores only the completion tokens, as it does on GPUs", ("device",)),
    Internal("accelerate.data_loader:DataLoaderAdapter", "base_dataloader", "instance attribute",
             "epoch reseeding: the data loader accelerate's prepared loader wraps, to find TRL's sampler"),
)


# --- transformers generation (shared prefill) ---------------------------------------------------------------


def prepare_generation_config(model: Any, generation_config: Any, **kwargs: Any) -> tuple[Any, dict]:
    """The `GenerationConfig` that `model.generate(generation_config=..., **kwargs)` would use (the caller's, the
    model's defaults under it, the kwargs over it) and the kwargs it leaves to the model."""
    return model._prepare_generation_config(generation_config, **kwargs)


def image_counts(model: Any, input_ids: Any) -> Any:
    """The number of images in each row of `input_ids` (a Qwen2-VL / Qwen2.5-VL model's count)."""
    images, _ = model._get_image_nums_and_video_nums(input_ids)
    return images


def generation_position_ids(model: Any, input_ids: Any, model_kwargs: dict) -> Any:
    """The 3D rotary positions `generate` computes for a prompt batch; sets the model's `rope_deltas` too."""
    return model._prepare_position_ids_for_generation(input_ids, model_kwargs)


def select_rope_deltas(model: Any, rows: Any) -> None:
    """Keep the rows `rows` (indices, in order) of the rotary offsets `generation_position_ids` left on the
    model's base (nothing to do when it holds none)."""
    base = model.model
    if getattr(base, "rope_deltas", None) is not None:
        base.rope_deltas = base.rope_deltas.index_select(0, rows.to(base.rope_deltas.device))


# --- transformers / TRL loading ----------------------------------------------------------------------------


def is_image_text_to_text_config(config: Any) -> bool:
    """Whether `AutoModelForImageTextToText` has a class for this config (Qwen2.5-VL, Qwen2-VL, ...)."""
    from transformers import AutoModelForImageTextToText

    return type(config) in AutoModelForImageTextToText._model_mapping


def create_model_from_path(model_id: str, **kwargs: Any) -> Any:
    """TRL's `create_model_from_path` (dtype, device map and ZeRO-3 handling as in its trainers)."""
    from trl.trainer.utils import create_model_from_path as create

    return create(model_id, **kwargs)


def find_adapter_config_file(model_id: str, revision: str | None = None) -> str | None:
    """The path of a hub or local LoRA adapter's adapter_config.json, or None."""
    from transformers.utils import find_adapter_config_file as find

    return find(model_id, revision=revision)


def estimate_zero3_model_states_mem_needs(*args: Any, **kwargs: Any) -> tuple:
    """DeepSpeed's ZeRO-3 estimate of model-state bytes: (CPU, GPU, largest layer)."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs as estimate

    return estimate(*args, **kwargs)


def estimate_zero2_model_states_mem_needs(*args: Any, **kwargs: Any) -> tuple:
    """DeepSpeed's ZeRO-2 estimate of model-state bytes: (CPU, GPU)."""
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs as estimate

    return estimate(*args, **kwargs)


def tiktoken_tokenizer(vocab_file: str, pattern: str) -> Any:
    """A `tokenizers.Tokenizer` (byte-level BPE) converted from a tiktoken vocabulary file with split `pattern`."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    return TikTokenConverter(vocab_file=vocab_file, pattern=pattern).tokenizer()


@contextmanager
def without_zero3() -> Iterator[None]:
    """Let `from_pretrained` load plain, unpartitioned weights while a ZeRO-3 run is configured."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


# --- TRL tools and SFT -------------------------------------------------------------------------------------


def parse_response(tokenizer: Any, ids: list[int], prefix: list[int] | None = None,
                   tools: list | None = None) -> dict:
    """TRL's parser of a generated assistant turn (its text and tool calls), as GRPO training parses it."""
    from trl.chat_template_utils import parse_response as parse

    return parse(tokenizer, ids, prefix=prefix, tools=tools)


def vision_language_collator(processor: Any, max_length: int | None) -> Any:
    """TRL's SFT collator for conversations with images."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    return DataCollatorForVisionLanguageModeling(processor, max_length=max_length)


# --- GRPOTrainer state -------------------------------------------------------------------------------------


def trainer_metrics(trainer: Any) -> dict:
    """The GRPOTrainer's per-mode lists of step values ({"train": {name: [...]}, "eval": ...}), averaged and
    logged at each logging step."""
    return trainer._metrics


def log_metric(trainer: Any, name: str, value: float) -> None:
    """Log a scalar through the hook TRL gives reward functions (averaged over the logging step)."""
    trainer._log_metric(name, value)


def observe_rewards(trainer: Any, observe: Callable[[Any], None], marker: str) -> None:
    """Call `observe(rewards_per_func)` after each reward computation of `trainer` (every process's rewards,
    gathered, in group order): wraps its `_calculate_rewards` on the instance, once per `marker`."""
    if marker in trainer.__dict__:
        return
    calculate = getattr(trainer, CALCULATE_REWARDS)
    trainer.__dict__[marker] = calculate

    def calculate_and_observe(inputs, prompts, completions, completion_ids_list):
        rewards_per_func = calculate(inputs, prompts, completions, completion_ids_list)
        observe(rewards_per_func)
        return rewards_per_func

    setattr(trainer, CALCULATE_REWARDS, calculate_and_observe)


def reseed_repeat_sampler(loader: Any, epoch: int) -> bool:
    """Seed the generator of TRL's `RepeatSampler` under a (prepared) data loader from (its seed + `epoch`), so
    epoch e draws the same order whether the run was resumed or not; False when there is no seeded sampler."""
    todo, seen = [loader], set()
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if getattr(obj, "seed", None) is not None and hasattr(getattr(obj, "generator", None), "manual_seed"):
            obj.generator.manual_seed(obj.seed + epoch)
            return True
        todo.extend(getattr(obj, name, None) for name in ("batch_sampler", "sampler", "base_dataloader"))
    return False


def wrap_prepare_inputs(trainer: Any, regroup: Callable[[list[dict]], list[dict]], marker: str,
                        enabled: bool = True) -> None:
    """After each `_prepare_inputs` of `trainer` that generated a new batch (TRL buffered new micro-batches),
    replace the buffer by `regroup(micro_batches)` (as many, in TRL's layout) and hand on the micro-batch at
    the same position. Wraps the instance's method once per `marker`; `enabled=False` restores it."""
    if not enabled:
        if marker in trainer.__dict__:
            before = trainer.__dict__.pop(marker)
            if before is None:
                del trainer.__dict__[PREPARE_INPUTS]
            else:
                setattr(trainer, PREPARE_INPUTS, before)
        return
    if marker in trainer.__dict__:
        return
    trainer.__dict__[marker] = trainer.__dict__.get(PREPARE_INPUTS)  # an instance method set before ours, if any
    prepare = getattr(trainer, PREPARE_INPUTS)

    def prepare_and_regroup(generation_batch):
        before = trainer._buffered_inputs
        inputs = prepare(generation_batch)
        buffered = trainer._buffered_inputs
        if buffered is None or buffered is before:
            return inputs  # evaluation, or a micro-batch of a batch already regrouped
        position = next(i for i, batch in enumerate(buffered) if batch is inputs)
        trainer._buffered_inputs = regroup(buffered)
        return trainer._buffered_inputs[position]

    setattr(trainer, PREPARE_INPUTS, prepare_and_regroup)


def adds_aux_loss(trainer: Any) -> bool:
    """Whether the GRPOTrainer adds a MoE router's auxiliary loss (a mean per micro-batch)."""
    return bool(getattr(trainer, "aux_loss_enabled", False))


def split_pixel_values_by_rows(batch: dict) -> dict:
    """TRL's split of a batch's flattened image tensors into one entry per row (Qwen: by `image_grid_thw`)."""
    from trl.trainer.utils import split_pixel_values_by_grid

    return split_pixel_values_by_grid(batch)


def merge_pixel_values_rows(batch: dict) -> dict:
    """TRL's inverse of `split_pixel_values_by_rows`: each per-row image list back in one tensor."""
    from trl.trainer.utils import unsplit_pixel_values_by_grid

    return unsplit_pixel_values_by_grid(batch)


# --- TRL's fused log-prob head ------------------------------------------------------------------------------


def score_completion_tokens_only(enabled: bool = True) -> None:
    """Let TRL's fused log-prob head score only the labelled positions (the completion tokens) on a CPU too.

    TRL does so where Triton runs (CUDA, XPU) and scores every position elsewhere, to keep tile shapes fixed for
    graph compilers. A CPU compiles nothing, and scoring a 4-view prompt's 2,000 positions against the 151,936-token
    vocabulary costs [tokens x 32,768] fp32 tiles (2.5 GB at 4,000 tokens) and most of the step's time for
    nothing: the prompt positions are masked out of the loss. Each scored row is computed as before."""
    import trl.trainer.utils as trl_utils

    current = trl_utils._use_triton
    original = getattr(current, "__wrapped__", current)
    if not enabled:
        trl_utils._use_triton = original
        return

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or original(device)

    compact_on_cpu.__wrapped__ = original
    trl_utils._use_triton = compact_on_cpu

