"""A shallow Qwen2.5-VL at the real 3B or 7B widths, randomly initialised and built offline.

Everything but depth is the released model's: embedding rows, hidden and MLP widths, heads, vision window and
mRoPE sections (from `open_r1/model_configs/`), the real Qwen2 vocabulary, Qwen2.5-VL's own chat template,
processor and generation settings, bf16 weights. So a CPU run of a GPU recipe on it meets the shapes, token
counts and memory per parameter of the real run, and nothing passes through the tiny model's compact vocabulary.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
from pathlib import Path

from open_r1.modeling.chat_template import QWEN2_5_VL_CHAT_TEMPLATE
from open_r1.modeling.vocab import build_qwen_tokenizer, qwen_processor

logger = logging.getLogger(__name__)

SHAPES = ("3b", "7b")
MARKER = "real_width_model.json"
# Qwen2.5-VL's released preprocessor and generation settings (the processor's defaults otherwise).
RELEASED_MIN_PIXELS = 3136
RELEASED_MAX_PIXELS = 12845056
RELEASED_GENERATION = dict(do_sample=True, repetition_penalty=1.05, temperature=0.1, top_p=0.001, top_k=1)


def released_config(shapes: str) -> dict:
    """The released model's config (as shipped in `open_r1/model_configs/`), without its comment."""
    if shapes not in SHAPES:
        raise ValueError(f"shapes must be one of {SHAPES}, got {shapes!r}")
    text = (importlib.resources.files("open_r1") / "model_configs" / f"qwen2_5_vl_{shapes}.json").read_text()
    spec = json.loads(text)
    spec.pop("_comment", None)
    return spec


def shallow_config(shapes: str, num_layers: int, vision_depth: int):
    """The released config of `shapes` with `num_layers` text layers and `vision_depth` vision blocks.

    The last vision block attends to the whole image and the others to 112-pixel windows, as in the released
    tower (every 8th block full), so both attention paths run."""
    from transformers import Qwen2_5_VLConfig

    if num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    if vision_depth < 2:
        raise ValueError(f"vision_depth must be at least 2 (one windowed and one full-attention block), got {vision_depth}")
    spec = released_config(shapes)
    spec["text_config"]["num_hidden_layers"] = num_layers
    spec["vision_config"]["depth"] = vision_depth
    spec["vision_config"]["fullatt_block_indexes"] = [vision_depth - 1]
    config = Qwen2_5_VLConfig(**spec)
    config.dtype = "bfloat16"
    return config


def build_real_width_model(
    out: str | Path,
    *,
    shapes: str = "3b",
    num_layers: int = 2,
    vision_depth: int = 2,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the shallow real-width model (bf16 weights, processor, generation config) to `out`; return it.

    A folder that already holds the same model is returned as it is, before torch is imported."""
    out = Path(out)
    marker = out / MARKER
    spec = {
        "shapes": shapes,
        "num_layers": num_layers,
        "vision_depth": vision_depth,
        "seed": seed,
        "chat_template": hashlib.sha256(QWEN2_5_VL_CHAT_TEMPLATE.encode()).hexdigest()[:12],
    }
    if not overwrite and marker.exists() and json.loads(marker.read_text()) == spec:
        logger.info("real-width model already at %s", out)
        return out
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    config = shallow_config(shapes, num_layers, vision_depth)
    processor = qwen_processor(build_qwen_tokenizer(), QWEN2_5_VL_CHAT_TEMPLATE, min_pixels=RELEASED_MIN_PIXELS,
                               max_pixels=RELEASED_MAX_PIXELS)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, pad_token_id=text.pad_token_id,
        eos_token_id=[text.eos_token_id, text.bos_token_id], **RELEASED_GENERATION,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    marker.write_text(json.dumps(spec))
    logger.info("%s-width Qwen2.5-VL, %d text layers, %d vision blocks: %.0fM parameters", shapes, num_layers,
                vision_depth, sum(p.numel() for p in model.parameters()) / 1e6)
    return out
