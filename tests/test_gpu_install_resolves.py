"""The GPU set resolves: pip's own resolver over requirements.txt + requirements-gpu.txt, as `setup.sh --gpu` installs
them (requirements.txt's torch lines replaced by the CUDA pins), against the package index. Nothing is installed:
`pip install --dry-run --report` reads the packages' metadata only. Needs the index (CI has it); marked `network`."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPORTED = ("vllm", "torch", "torchvision", "transformers", "trl", "liger-kernel", "bitsandbytes", "deepspeed")
# pip's words when the index cannot be reached at all (not a conflict, nor a missing version)
UNREACHABLE = re.compile(r"Network is unreachable|Temporary failure in name resolution|Name or service not known|"
                         r"Failed to establish a new connection|Could not resolve host|No route to host")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#;]+)", line.strip())
        if match:
            pins[_canonical(match.group(1))] = match.group(2)
    return pins


def _index_only_env() -> dict[str, str]:
    """pip as on a fresh GPU machine: this machine's pip configuration (local wheel folders, constraint files)
    left out. A local folder of CPU builds (torch 2.13.0+cpu) would otherwise satisfy `torch==2.13.0` before the
    index's CUDA build, since a local version label sorts above the plain release."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX", "PIP_REQUIREMENT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(DS_BUILD_OPS="0", DS_SKIP_CUDA_CHECK="1")  # as setup.sh: DeepSpeed's sdist builds its metadata only
    return env


def _pip(args: list[str], tmp_path: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], cwd=tmp_path, env=_index_only_env(),
                          capture_output=True, text=True, timeout=timeout)


def _skip_if_unreachable(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0 and UNREACHABLE.search(result.stdout + result.stderr):
        pytest.skip("the package index is unreachable from here (pip: "
                    f"{UNREACHABLE.search(result.stdout + result.stderr).group(0)}); CI resolves the GPU set")


@pytest.mark.network
@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
                    reason="the GPU set (vLLM, CUDA torch) is published for Linux x86_64 / aarch64")
def test_gpu_requirements_resolve_without_conflict(tmp_path):
    # setup.sh --gpu: requirements.txt without its torch / torchvision lines, then requirements-gpu.txt
    base = [line for line in (REPO / "requirements.txt").read_text().splitlines()
            if not re.match(r"^(torch|torchvision)==", line)]
    (tmp_path / "requirements.txt").write_text("\n".join(base) + "\n")
    report = tmp_path / "report.json"
    start = time.perf_counter()
    result = _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                   "-r", str(tmp_path / "requirements.txt"), "-r", str(REPO / "requirements-gpu.txt")], tmp_path)
    seconds = time.perf_counter() - start
    _skip_if_unreachable(result)
    assert result.returncode == 0, (
        "pip cannot install requirements.txt + requirements-gpu.txt together (what `bash setup.sh --gpu` does):\n"
        + (result.stderr or result.stdout)[-4000:])

    chosen = {_canonical(item["metadata"]["name"]): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    print(f"\nGPU set resolved in {seconds:.0f} s, {len(chosen)} packages: "
          + ", ".join(f"{name} {chosen.get(name, '-')}" for name in REPORTED))
    gpu_pins = _pins(REPO / "requirements-gpu.txt")
    for name, version in {**{k: v for k, v in _pins(REPO / "requirements.txt").items()
                             if k not in ("torch", "torchvision")}, **gpu_pins}.items():
        assert chosen.get(name) == version, f"{name}: pinned {version}, the resolver chose {chosen.get(name)}"
    # the index's torch for Linux is the CUDA build: it brings NVIDIA's runtime libraries with it
    cuda_libs = [name for name in chosen if name.startswith(("nvidia-", "cuda-"))]
    assert cuda_libs, f"torch {chosen['torch']} resolved without CUDA libraries: not the CUDA build"


@pytest.mark.network
@pytest.mark.skipif(sys.platform != "linux", reason="flash-attn publishes Linux builds only")
def test_flash_attn_is_tried_as_a_prebuilt_wheel_only(tmp_path):
    """`setup.sh --gpu` installs flash-attn only from a prebuilt wheel (compiling it takes an hour and a CUDA
    toolkit); this asks the index the same question, and either answer is fine: without a wheel the recipes run
    on sdpa, and `python -m open_r1.plan ... --attn_implementation flash_attention_2` shows what it would save."""
    script = (REPO / "setup.sh").read_text()
    line = next(line for line in script.splitlines() if "flash-attn" in line and "pip" in line)
    assert "--only-binary=:all:" in line, "setup.sh must never build flash-attn from source"
    assert "||" in script[script.index(line):script.index(line) + len(line) + 200], "setup.sh must not fail on it"
    pins = _pins(REPO / "requirements-gpu.txt")
    result = _pip(["install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet", "--only-binary=:all:",
                   "flash-attn", f"torch=={pins['torch']}"], tmp_path, timeout=300)
    _skip_if_unreachable(result)
    found = "a prebuilt wheel" if result.returncode == 0 else "no prebuilt wheel (sdpa)"
    print(f"\nflash-attn on the index for this platform: {found}")
