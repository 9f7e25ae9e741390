"""Qwen2.5's tool-call format for Qwen2.5-VL processors, so TRL's tool loop can render and parse episodes.

Qwen2.5-VL's own chat template silently drops tools and tool turns, while the Qwen2.5 models it is built on were
trained on a tool format. `TOOL_CHAT_TEMPLATE` is that format with Qwen2.5-VL's vision placeholders; without
tools it renders exactly as Qwen2.5-VL's template. `COMPACT_TOOL_CHAT_TEMPLATE` (one signature line per tool)
ships with the tiny model. Assistant turns sit in `{% generation %}` markers so SFT learns only the model's turns;
`RESPONSE_TEMPLATE` tells TRL's parser where the calls are and keeps `<think>` in the content.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "COMPACT_TOOL_CHAT_TEMPLATE",
    "QWEN2_5_VL_CHAT_TEMPLATE",
    "RESPONSE_TEMPLATE",
    "TOOL_CHAT_TEMPLATE",
    "enable_tool_calls",
    "tools_system_text",
]

logger = logging.getLogger(__name__)

_CONTENT = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content is not none -%}"
    "{%- for part in content -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)

# The system turn's tool list, as Qwen2.5 writes it: each tool's JSON schema, then how to call.
_FULL_TOOL_LIST = (
    "{{ '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools -%}{{ '\\n' }}{{ tool | tojson }}{%- endfor -%}"
    "{{ '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call>' }}"
)
# One signature line per tool, `zoom(x1, y1, x2, y2, view)`, for the tiny model: its system turn listing `zoom`
# takes 62 tokens of its 1,024-token vocabulary instead of 876 with the schema, which a model trained from scratch
# cannot read anyway (it learns the calls from its SFT targets). The calls and tool turns are Qwen2.5's.
_COMPACT_TOOL_LIST = (
    "{{ '\\n\\n# Tools\\n<tools>' }}"
    "{%- for tool in tools -%}"
    "{%- set spec = tool.function if tool.function is defined else tool -%}"
    "{{ '\\n' + spec.name + '(' }}"
    "{%- for argument in (spec.parameters.properties if spec.parameters is defined else {}) -%}"
    "{{ argument }}{%- if not loop.last -%}{{ ', ' }}{%- endif -%}"
    "{%- endfor -%}"
    "{{ ')' }}"
    "{%- endfor -%}"
    "{{ '\\n</tools>' }}"
)

# A template is _SYSTEM_WITH_TOOLS + a tool list + _TURNS: the first opens the system turn under `if tools`, the
# last closes that turn and the `if`, then renders the conversation.
_SYSTEM_WITH_TOOLS = (
    "{%- if tools -%}"
    "{{ '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' -%}{{ render(messages[0]['content']) }}"
    "{%- else -%}{{ 'You are a helpful assistant.' }}{%- endif -%}"
)
_TURNS = (
    "{{ '<|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' and loop.first and tools -%}"
    "{%- elif message['role'] == 'assistant' and message.get('tool_calls') -%}"
    "{%- set text = render(message['content']) -%}"
    "{{ '<|im_start|>assistant' }}"
    "{%- generation -%}"
    "{%- if text -%}{{ '\\n' + text }}{%- endif -%}"
    "{%- for tool_call in message['tool_calls'] -%}"
    "{%- if tool_call.function is defined -%}{%- set tool_call = tool_call.function -%}{%- endif -%}"
    "{{ '\\n<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' }}"
    "{%- if tool_call.arguments is string -%}{{ tool_call.arguments }}"
    "{%- else -%}{{ tool_call.arguments | tojson }}{%- endif -%}"
    "{{ '}\\n</tool_call>' }}"
    "{%- endfor -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endgeneration -%}"
    "{%- elif message['role'] == 'tool' -%}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}"
    "{{ '\\n<tool_response>\\n' }}{{ render(message['content']) }}{{ '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' -%}{{ '<|im_end|>\\n' }}{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ render(message['content']) }}{{ '<|im_end|>\\n' }}{%- endgeneration -%}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}{{ render(message['content']) }}{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

TOOL_CHAT_TEMPLATE = _CONTENT + _SYSTEM_WITH_TOOLS + _FULL_TOOL_LIST + _TURNS
COMPACT_TOOL_CHAT_TEMPLATE = _CONTENT + _SYSTEM_WITH_TOOLS + _COMPACT_TOOL_LIST + _TURNS

# transformers' response-template parser (>= 5.13): the calls at the end of the turn, everything else content.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def enable_tool_calls(processor: Any) -> Any:
    """Give a Qwen2.5-VL processor (and its tokenizer) the tool-call chat template and the response parser, and
    return it. A processor whose template already renders tool calls keeps its own template."""
    from trl import supports_tool_calling

    tokenizer = getattr(processor, "tokenizer", processor)
    if not supports_tool_calling(processor):
        logger.info("the chat template cannot render tool calls: using Qwen2.5's tool format with vision parts")
        processor.chat_template = TOOL_CHAT_TEMPLATE
        if tokenizer is not processor:
            tokenizer.chat_template = TOOL_CHAT_TEMPLATE
    if getattr(tokenizer, "response_template", None) is None:
        tokenizer.response_template = RESPONSE_TEMPLATE
    return processor


def tools_system_text(processor: Any, tools: list) -> str:
    """The system turn's text that lists `tools`, exactly as the template writes it when given `tools=`. TRL's
    vision SFT collator renders conversations without `tools=`, so SFT prompts carry the list as a system
    message; the rendered prompt is then the one GRPO generates from."""
    text = processor.apply_chat_template([{"role": "user", "content": ""}], tools=tools, tokenize=False)
    start, end = "<|im_start|>system\n", "<|im_end|>\n<|im_start|>user"
    if not text.startswith(start) or end not in text:
        raise ValueError("the chat template does not write the tool list into a system turn")
    return text[len(start) : text.index(end)]


# Qwen2.5-VL's own conversation format: a default system turn, vision placeholders inside user turns, and no tool
# calls (a released checkpoint's template drops them; `enable_tool_calls` then gives it Qwen2.5's).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}"
    "{%- set video_count = namespace(value=0) -%}"
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{%- set image_count.value = image_count.value + 1 -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{%- set video_count.value = video_count.value + 1 -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}"
)
