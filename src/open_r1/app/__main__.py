"""`python -m open_r1.app`: start the page on a local port, with a model (the ask tab), an evaluation run (the
browse tab opened on it), or both. The model loads before the page opens; if it cannot, the page says why.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from open_r1.cli import run_main
from open_r1.configs import ModelArguments
from open_r1.evaluation.harness import tools_from
from open_r1.modeling.prompt_record import trained_question_template


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m open_r1.app", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name_or_path", help="model folder, checkpoint, LoRA adapter or hub id to ask")
    parser.add_argument("--base_model", help="base model of a LoRA adapter, instead of the one it names")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], help="weights dtype")
    parser.add_argument("--tools", nargs="*", default=[], help="tools the model may call: zoom, lookup")
    parser.add_argument("--tool_module", help="a .py file of the user's own tools")
    parser.add_argument("--max_tool_rounds", type=int, default=3, help="rounds of tool calls before the answer")
    parser.add_argument("--num_guesses", type=int, help="answers sampled per question, shown ranked by support "
                        "(default 5; 1 with --tools)")
    parser.add_argument("--temperature", type=float, help="default 0 for one guess, 1.0 for several")
    parser.add_argument("--max_new_tokens", type=int, default=1024, help="longest answer, reasoning included")
    parser.add_argument("--min_pixels", type=int, help="smallest image area given to the vision tower")
    parser.add_argument("--max_pixels", type=int, help="largest image area given to the vision tower")
    parser.add_argument("--question_template",
                        help="the user turn to ask with (default: the one recorded in the model's folder, else geo-r's)")
    parser.add_argument("--run", help="an evaluation's output folder (predictions.jsonl, metrics.json) to open")
    parser.add_argument("--server_name", default="127.0.0.1", help="address to listen on (0.0.0.0: every one)")
    parser.add_argument("--server_port", type=int, help="port (default: the first free one from 7860)")
    args = parser.parse_args(argv)
    if not args.model_name_or_path and not args.run:
        parser.error("give --model_name_or_path (ask a model), --run (browse an evaluation), or both")
    if args.num_guesses is None:
        args.num_guesses = 1 if args.tools else 5
    if args.num_guesses < 1 or (args.tools and args.num_guesses != 1):
        parser.error("--num_guesses must be at least 1, and 1 with --tools (an episode is one answer)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = parse_args(argv)
    from open_r1.app.ask import Asker
    from open_r1.app.map import MAP_CSS
    from open_r1.app.page import THEME, build_page

    asker = None
    if args.model_name_or_path:
        model_args = ModelArguments(model_name_or_path=args.model_name_or_path, base_model=args.base_model,
                                    dtype=args.dtype)
        asker = Asker(model_args, num_guesses=args.num_guesses, max_new_tokens=args.max_new_tokens,
                      temperature=args.temperature, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
                      question_template=trained_question_template(args.question_template, args.model_name_or_path),
                      max_tool_rounds=args.max_tool_rounds,
                      toolset=tools_from(args) if args.tools else None).load()
        if asker.error:
            logging.getLogger(__name__).error("%s", asker.error)
    build_page(asker, args.run).launch(server_name=args.server_name, server_port=args.server_port,
                                       ssr_mode=False, theme=THEME, css=MAP_CSS)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run_main(main)
