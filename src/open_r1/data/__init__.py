"""Data loading: jsonl + image folders -> validated rows -> datasets for GRPO, SFT and evaluation."""

from open_r1.data.jsonl import load_rows, pair_files_with_folders, split_paths
from open_r1.data.rows import DataError, Row

__all__ = ["DataError", "Row", "load_rows", "pair_files_with_folders", "split_paths"]
