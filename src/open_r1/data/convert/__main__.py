"""Command line: `python -m open_r1.data.convert FORMAT --out OUT.jsonl [flags]` (`FORMAT --help` for flags)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from open_r1.answer import DEFAULT_GEO_QUESTION
from open_r1.cli import fail, run_main
from open_r1.data.convert import FORMATS, MODULES
from open_r1.data.convert.writer import Summary, WriterOptions, write_records
from open_r1.errors import InputError


def _module(name: str):
    return importlib.import_module(f"open_r1.data.convert.{MODULES.get(name, name)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m open_r1.data.convert",
        description="Convert a geolocation dataset into jsonl + image folder rows for geo-r.",
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name in FORMATS:
        module = _module(name)
        sub = formats.add_parser(
            name,
            help=module.DESCRIPTION,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.add_argument("--out", required=True, help="the jsonl to write")
        sub.add_argument(
            "--question", default=DEFAULT_GEO_QUESTION, help=f"the human turn (default {DEFAULT_GEO_QUESTION!r})"
        )
        sub.add_argument("--no_fill_names", action="store_true", help="leave missing country/region/city empty")
        sub.add_argument(
            "--sft_targets", action="store_true",
            help="write Chain-of-Region SFT targets (<think> region chain + <answer>) as the gpt turn",
        )
        sub.add_argument("--max_rows", type=int, default=None, help="stop after this many rows (a quick try)")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def convert(args: argparse.Namespace) -> Summary:
    """Run the converter `args.format` with the parsed flags.

    A converter may leave a line about its input in `args.coordinate_note` (the table converters: which column
    holds the latitudes, and why), and its records may carry `notes()`, printed after the rows are written
    (the EXIF converter: every photo it could not decode, with the reason).
    """
    records, image_folder, total = _module(args.format).read(args)
    if getattr(args, "coordinate_note", None):
        print(args.coordinate_note)
    options = WriterOptions(
        question=args.question,
        fill_names=not args.no_fill_names,
        swap_latlon=getattr(args, "swap_latlon", None),
        sft_targets=args.sft_targets,
        max_rows=args.max_rows,
        progress=not args.quiet,
    )
    summary = write_records(records, args.out, image_folder, options, total=total, desc=args.format)
    for line in getattr(records, "notes", lambda: [])():
        print(line)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = convert(args)
    except InputError as err:
        return fail(err)
    print(summary.format())
    if not summary.written:
        print("error: no rows were written", file=sys.stderr)
        return 1
    print(
        "check it with: python -m open_r1.data.validate "
        f"--data_file_paths {summary.out} --image_folders {summary.image_folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
