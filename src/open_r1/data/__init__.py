"""Data loading: jsonl + image folders -> validated rows -> datasets for GRPO, SFT and evaluation."""

from open_r1.data.jsonl import DataError, Row, load_rows, pair_files_with_folders, split_paths

__all__ = ["DataError", "Row", "load_rows", "pair_files_with_folders", "split_paths"]
