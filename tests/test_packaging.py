"""What `pip install .` promises: the same known-good pins as `requirements.txt`, the dev extra equal to
`requirements-dev.txt`, and a LICENSE file of the license the package declares."""

from __future__ import annotations

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


def test_the_license_file_matches_the_declared_license():
    assert project()["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
