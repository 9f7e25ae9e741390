"""Which SFT warm start a GRPO launch can reuse: a fingerprint of everything that decides the SFT model.

run_grpo_rec.sh trains the warm start once and reuses it while the model, data, recipe and flags are unchanged:
the fingerprint hashes each one's contents, so an edited recipe or regenerated data trains a new warm start.

    python -m open_r1.training.warm_start MODEL DATA RECIPE -- [SFT flags]    # prints 16 hex digits
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

LARGE_FILE_BYTES = 64 << 20


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    stat = path.stat()
    digest.update(f"{path.name}:{stat.st_size}".encode())
    if stat.st_size > LARGE_FILE_BYTES:
        digest.update(str(stat.st_mtime_ns).encode())
        return
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _files(path: Path) -> Iterable[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        yield path


def fingerprint(inputs: Sequence[str], flags: Sequence[str] = ()) -> str:
    """16 hex digits over `inputs` (files, folders, or names such as a hub model id, taken as text) and `flags`.
    Folders are hashed file by file in a fixed order; a missing path counts by its name, so a hub id works."""
    digest = hashlib.sha256()
    for item in inputs:
        path = Path(item)
        digest.update(b"\0input\0" + os.path.normpath(item).encode() if not path.exists() else b"\0input\0")
        for file in _files(path):
            _hash_file(digest, file)
    for flag in flags:
        digest.update(b"\0flag\0" + flag.encode())
    return digest.hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    inputs, flags = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    if not inputs or inputs[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    print(fingerprint(inputs, flags))  # noqa: T201


if __name__ == "__main__":
    main()
