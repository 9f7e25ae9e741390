"""Tool-using episodes: the chat template renders Qwen2.5's tool-call format for a Qwen2.5-VL processor (and
changes nothing without tools), TRL's parser reads the calls back, the rewards read the final answer after the
tool turns, and `tool_use` penalises invalid calls and calls past the cap."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image
from trl.chat_template_utils import is_chat_template_prefix_preserving, parse_response, supports_tool_calling
from trl.data_utils import prepare_multimodal_messages

from open_r1.answer import TOOL_ERROR_PREFIX, render_answer
from open_r1.modeling.chat_template import COMPACT_TOOL_CHAT_TEMPLATE, QWEN2_5_VL_CHAT_TEMPLATE, enable_tool_calls
from open_r1.modeling.loading import load_processor
from open_r1.rewards import build_reward_funcs
from open_r1.tools import build_toolset

LISBON = (38.7167, -9.1395)
ANSWER = "<answer>" + render_answer(*LISBON, "Portugal", "Lisbon", "Lisbon") + "</answer>"
ZOOM = {"type": "function", "function": {"name": "zoom", "arguments": {"x1": 0.6, "y1": 0.6, "x2": 0.9, "y2": 0.9}}}


def zoom_episode(first: str, final: str, tool_content=None, calls=1):
    """An episode as TRL hands it to the rewards: a turn with a call, the tool's answer, the final turn."""
    messages = []
    for _ in range(calls):
        messages += [
            {"role": "assistant", "content": first, "tool_calls": [ZOOM]},
            {"role": "tool", "name": "zoom", "content": tool_content or [{"type": "text", "text": "view 0"}]},
        ]
        first = ""
    return [*messages, {"role": "assistant", "content": final}]


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(str(tiny_model_dir))


def test_template_renders_tools_calls_and_image_responses(processor):
    image = Image.new("RGB", (56, 56))
    prompt = prepare_multimodal_messages([{"role": "user", "content": "Where?"}], [image])
    processor.chat_template = processor.tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE  # a released checkpoint's
    before = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert not supports_tool_calling(processor)  # Qwen2.5-VL's own template drops tool calls
    enable_tool_calls(processor)
    assert supports_tool_calling(processor) and is_chat_template_prefix_preserving(processor)
    # without tools nothing changes: models trained before see the same prompts
    assert processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == before
    tools = build_toolset(["zoom", "lookup"]).schemas()
    episode = prompt + prepare_multimodal_messages(
        [{"role": "assistant", "content": "<think>a sign", "tool_calls": [ZOOM]},
         {"role": "tool", "name": "zoom", "content": [{"type": "image", "image": image}, {"type": "text", "text": "crop"}]}]
    )
    text = processor.apply_chat_template(episode, tools=tools, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
    assert '"name": "zoom"' in text and '"name": "lookup"' in text and "<tools>" in text
    assert ('<|im_start|>assistant\n<think>a sign\n<tool_call>\n{"name": "zoom", "arguments": {"x1": 0.6, '
            '"y1": 0.6, "x2": 0.9, "y2": 0.9}}\n</tool_call><|im_end|>\n') in text
    assert text.endswith("<|im_start|>user\n<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>crop\n"
                         "</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert text.count("<|image_pad|>") == 2  # the photo and the crop


def test_the_tiny_model_lists_its_tools_in_one_line_each_and_calls_them_as_qwen_does(tiny_model_dir):
    """The tiny model's own template: the prompts of a model trained without tools, Qwen2.5's calls and tool turns,
    and a tool list short enough for a 2-layer model to read past (the schemas take many times the tokens)."""
    compact = load_processor(str(tiny_model_dir))
    released = load_processor(str(tiny_model_dir))
    released.chat_template = released.tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    image = Image.new("RGB", (56, 56))
    prompt = prepare_multimodal_messages([{"role": "user", "content": "Where?"}], [image])
    assert (compact.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            == released.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
    assert supports_tool_calling(compact) and is_chat_template_prefix_preserving(compact)
    assert enable_tool_calls(compact).chat_template == COMPACT_TOOL_CHAT_TEMPLATE  # kept, not replaced
    enable_tool_calls(released)
    tools = build_toolset(["zoom", "lookup"]).schemas()
    episode = prompt + prepare_multimodal_messages(
        [{"role": "assistant", "content": "<think>a sign", "tool_calls": [ZOOM]},
         {"role": "tool", "name": "zoom", "content": [{"type": "image", "image": image}, {"type": "text", "text": "crop"}]}]
    )
    short, full = (p.apply_chat_template(episode, tools=tools, tokenize=False, add_generation_prompt=True)
                   for p in (compact, released))
    assert short.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n<tools>\n"
                            "lookup(place)\nzoom(x1, y1, x2, y2, view)\n</tools><|im_end|>\n<|im_start|>user\n")
    turns = full[full.index("<|im_start|>user"):]
    assert short.endswith(turns)  # the same photo, call, tool turn and generation prompt
    count = lambda text: len(compact.tokenizer(text)["input_ids"])  # noqa: E731
    assert count(full) > 4 * count(short)


def test_generated_calls_parse_back_and_think_stays_in_the_content(processor):
    enable_tool_calls(processor)
    tokenizer = processor.tokenizer
    tools = build_toolset(["zoom", "lookup"]).schemas()
    prefix = tokenizer("<|im_start|>assistant\n")["input_ids"]
    call = tokenizer('<think>Europe, a sign</think>\n<tool_call>\n{"name": "lookup", "arguments": {"place": '
                     '"Lisbon"}}\n</tool_call><|im_end|>')["input_ids"]
    parsed = parse_response(tokenizer, call, prefix=prefix, tools=tools)
    assert parsed["content"] == "<think>Europe, a sign</think>"
    assert parsed["tool_calls"] == [{"type": "function", "function": {"name": "lookup", "arguments": {"place": "Lisbon"}}}]
    plain = parse_response(tokenizer, tokenizer("<think>x</think>\n" + ANSWER + "<|im_end|>")["input_ids"], prefix=prefix)
    assert plain["content"] == "<think>x</think>\n" + ANSWER and "tool_calls" not in plain


def rewards(names, completions, **options):
    funcs = build_reward_funcs(names, options)
    columns = dict(lat=[LISBON[0]] * len(completions), lon=[LISBON[1]] * len(completions),
                   trainer_state=SimpleNamespace(global_step=0, max_steps=10))
    logged = {}
    return [f([None] * len(completions), completions, log_metric=logged.__setitem__, **columns) for f in funcs], logged


def test_rewards_read_the_final_answer_after_the_tool_turns():
    reasoning = "Europe, the country is Portugal. A sign, too small"
    tool_episode = zoom_episode(f"<think>{reasoning}", f"it reads Lisbon: the region Lisbon, the city Lisbon.</think>\n{ANSWER}")
    # a draft answer before the call does not count; the answer after it does
    drafted = zoom_episode(f"<think>{reasoning}</think>\n{ANSWER}", "<think>unsure</think>")
    plain = [{"role": "assistant", "content": f"<think>{reasoning}, the region Lisbon, the city Lisbon.</think>\n{ANSWER}"}]
    (fmt, hav), _ = rewards(["format", "haversine"], [tool_episode, drafted, plain])
    assert hav[0] == pytest.approx(1.0) and hav[1] == 0.0 and hav[2] == pytest.approx(1.0)
    assert fmt[0] == pytest.approx(fmt[2]) == pytest.approx(1.0)  # one think across the turns, then the answer
    assert fmt[1] < 0  # no answer after the call


def test_tool_use_penalises_invalid_calls_and_calls_past_the_cap():
    good = zoom_episode("<think>x", f"y</think>{ANSWER}")
    failed = zoom_episode("<think>x", f"y</think>{ANSWER}", tool_content=f"{TOOL_ERROR_PREFIX} the box must ...")
    trl_error = zoom_episode("<think>x", f"y</think>{ANSWER}", tool_content="{'error': 'Tool search not found.'}")
    unparsed = [{"role": "assistant", "content": '<think>x</think>{"name": "zoom", "arguments": {"x1": 2'}]
    many = zoom_episode("<think>x", f"y</think>{ANSWER}", calls=5)
    none = [{"role": "assistant", "content": f"<think>x</think>{ANSWER}"}]
    (values,), logged = rewards(["tool_use"], [good, failed, trl_error, unparsed, many, none],
                                tool_call_penalty=0.25, max_tool_calls=3)
    assert values == pytest.approx([0.0, -0.25, -0.25, -0.25, -0.5, 0.0])
    assert logged["tools/calls_per_episode"] == pytest.approx((1 + 1 + 1 + 1 + 5 + 0) / 6)
    assert logged["tools/error_rate"] == pytest.approx(3 / 9)
    assert logged["tools/episodes_with_calls"] == pytest.approx(4 / 6)
