"""Build a tiny, randomly initialised Qwen2.5-VL with a real processor, entirely offline.

The real architecture at toy width, so every code path of a 3B run (vision tower, mRoPE, chat template,
image-token expansion) runs in tests on a CPU. `--vocab qwen` gives the real Qwen2 vocabulary instead of a compact
one; `--shapes 3b|7b` builds the released model's widths at a given depth, to rehearse the GPU recipes on a CPU.

    python -m open_r1.tiny_model --out .cache/tiny-qwen2.5-vl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

from open_r1.modeling.chat_template import COMPACT_TOOL_CHAT_TEMPLATE, QWEN2_5_VL_CHAT_TEMPLATE
from open_r1.modeling.vocab import (
    FIRST_SPECIAL_ID,
    PADDED_VOCAB_SIZE,
    SPECIAL_TOKENS,
    build_qwen_tokenizer,
    qwen_processor,
    wrap_tokenizer,
)

__all__ = ["QWEN2_5_VL_CHAT_TEMPLATE", "build_processor", "build_tiny_model", "tiny_config"]

logger = logging.getLogger(__name__)

DEFAULT_TINY_DIR = Path(".cache/tiny-qwen2.5-vl")

# The tiny model's: the same prompts without tools, and Qwen2.5's tool calls with a one-line-per-tool list.
CHAT_TEMPLATE = COMPACT_TOOL_CHAT_TEMPLATE


# Small, since the LM head is the largest layer of a model this narrow and most of a CPU training step's time.
COMPACT_VOCAB_SIZE = 1024
DEFAULT_HIDDEN_SIZE = 128  # the narrowest width at which the demo's SFT learns well


def compact_corpus() -> list[str]:
    """Text the compact tokenizer learns from: what this project's prompts and answers are made of."""
    import numpy as np

    from open_r1.answer import GENERIC_QUESTION_TEMPLATE, GEO_QUESTION_TEMPLATE, build_question
    from open_r1.data.sft_targets import RegionLabels, chain_of_region_target
    from open_r1.geo import continent_of, country_name
    from open_r1.geo.geocode import reverse_geocode

    rng = np.random.default_rng(0)
    lats, lons = rng.uniform(-60, 70, 3000), rng.uniform(-180, 180, 3000)
    texts = [GEO_QUESTION_TEMPLATE, GENERIC_QUESTION_TEMPLATE, build_question("Where was this photo taken?", True)]
    for i, place in enumerate(reverse_geocode(lats, lons)):
        if place is None:
            continue
        labels = RegionLabels(
            float(place.lat), float(place.lon), continent_of(place.country), country_name(place.country) or place.country,
            place.region or None, place.city or None,
        )
        texts.append(chain_of_region_target(labels, key=str(i)))
    texts.append(" ".join(str(n) for n in range(1000)))
    return texts


def _train_compact_backend():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=COMPACT_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(compact_corpus(), trainer=trainer)
    return backend


def build_tokenizer(vocab: str = "compact"):
    """A `Qwen2TokenizerFast` with the Qwen2.5-VL special tokens: `compact` (trained here) or `qwen` (real)."""
    if vocab == "compact":
        return wrap_tokenizer(_train_compact_backend(), check_real_ids=False)
    if vocab != "qwen":
        raise ValueError(f"vocab must be 'compact' or 'qwen', got {vocab!r}")
    return build_qwen_tokenizer()


def build_processor(min_pixels: int = 28 * 28 * 4, max_pixels: int = 112 * 112, vocab: str = "compact"):
    """A real `Qwen2_5_VLProcessor` around the offline tokenizer and the standard image processor."""
    return qwen_processor(build_tokenizer(vocab), CHAT_TEMPLATE, min_pixels=min_pixels, max_pixels=max_pixels)


def tiny_config(hidden_size: int = DEFAULT_HIDDEN_SIZE, num_layers: int = 2, vision_depth: int = 2, tokenizer=None):
    """A Qwen2.5-VL config at toy width; shapes stay consistent with the real model (mRoPE, window attention).

    Token ids come from `tokenizer` (the real Qwen2.5-VL ids when it is None or the real vocabulary)."""
    ids = {t: FIRST_SPECIAL_ID + i for i, t in enumerate(SPECIAL_TOKENS)}
    vocab_size = PADDED_VOCAB_SIZE
    if tokenizer is not None:
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        vocab_size = max(PADDED_VOCAB_SIZE if max(ids.values()) >= FIRST_SPECIAL_ID else 0, -(-len(tokenizer) // 64) * 64)
    from transformers import Qwen2_5_VLConfig

    heads = 4
    head_dim = hidden_size // heads
    half = head_dim // 2
    mrope_section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # same 2:3:3 split as 3B
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope_section},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=vision_depth,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=hidden_size,
            fullatt_block_indexes=[vision_depth - 1],
            window_size=112,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


MERGER_BIAS_NORM = 1.0


def _give_image_tokens_a_shared_direction(model) -> None:
    """Start the vision merger's output bias at a fixed random direction of norm MERGER_BIAS_NORM.

    A randomly initialised merger emits image tokens with no component in common, so the language model has
    nothing to attend to that says "this is the image" and learns to ignore it (measured on the demo set: one
    city for every photo after SFT). A pretrained merger's outputs share such a component; this gives the toy
    model one, and with it the demo's SFT names the right city for about half the held-out photos.
    """
    import torch

    linear = model.model.visual.merger.mlp[-1]
    direction = torch.randn(linear.out_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        linear.bias.copy_(direction / direction.norm() * MERGER_BIAS_NORM)


def build_tiny_model(
    out: str | Path = DEFAULT_TINY_DIR,
    *,
    hidden_size: int = DEFAULT_HIDDEN_SIZE,
    num_layers: int = 2,
    vision_depth: int = 2,
    vocab: str = "compact",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a tiny Qwen2.5-VL (weights, config, processor, generation config) to `out` and return the path.
    When `out` already holds the same model this returns before importing torch or transformers, so a launcher's
    check costs a fraction of a second."""
    out = Path(out)
    marker = out / "tiny_model.json"
    spec = {
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "vision_depth": vision_depth,
        "vocab": vocab,
        "compact_vocab_size": COMPACT_VOCAB_SIZE if vocab == "compact" else None,
        "seed": seed,
        "merger_bias_norm": MERGER_BIAS_NORM,
        "chat_template": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:12],
    }
    if not overwrite and marker.exists() and json.loads(marker.read_text()) == spec:
        logger.info("tiny model already at %s", out)
        return out
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    processor = build_processor(vocab=vocab)
    tokenizer = processor.tokenizer
    model = Qwen2_5_VLForConditionalGeneration(tiny_config(hidden_size, num_layers, vision_depth, tokenizer))
    _give_image_tokens_a_shared_direction(model)
    end, text_end = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        bos_token_id=text_end, eos_token_id=[end, text_end], pad_token_id=text_end, do_sample=True, temperature=1.0
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    marker.write_text(json.dumps(spec))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help=f"folder to write the model to (default {DEFAULT_TINY_DIR})")
    parser.add_argument("--shapes", choices=["3b", "7b"], default=None,
                        help="the released model's widths, vocabulary and template at --num_layers/--vision_depth")
    parser.add_argument("--hidden_size", type=int, default=DEFAULT_HIDDEN_SIZE)
    parser.add_argument("--num_layers", type=int, default=2)
    parser.add_argument("--vision_depth", type=int, default=2)
    parser.add_argument("--vocab", choices=["compact", "qwen"], default="compact", help="tokenizer (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if the folder holds the same model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.shapes:
        from open_r1.modeling.real_width import build_real_width_model

        if args.vocab != "compact" or args.hidden_size != DEFAULT_HIDDEN_SIZE:
            parser.error("--shapes sets the width and the vocabulary: drop --hidden_size / --vocab")
        out = args.out or f".cache/qwen2.5-vl-{args.shapes}-{args.num_layers}l{args.vision_depth}v"
        path = build_real_width_model(out, shapes=args.shapes, num_layers=args.num_layers,
                                      vision_depth=args.vision_depth, seed=args.seed, overwrite=args.overwrite)
        print(f"{args.shapes}-width Qwen2.5-VL written to {path}")
        return
    path = build_tiny_model(
        args.out or DEFAULT_TINY_DIR,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        vision_depth=args.vision_depth,
        vocab=args.vocab,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"tiny Qwen2.5-VL written to {path}")


if __name__ == "__main__":
    main()
