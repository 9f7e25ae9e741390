"""The installers stop at once, with a message naming the disk and the space missing, when the disk cannot hold the
environment, instead of failing minutes into pip with "No space left on device" and a half-filled environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

GIB_KIB = 1024 * 1024


@pytest.fixture
def fake_df(tmp_path: Path) -> Path:
    """A `df` whose free space is FAKE_DF_FREE_KIB (or which fails when that is unset), first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    df = bin_dir / "df"
    df.write_text(
        "#!/usr/bin/env bash\n"
        '[[ -n "${FAKE_DF_FREE_KIB:-}" ]] || { echo "df: cannot read" >&2; exit 1; }\n'
        'echo "Filesystem 1024-blocks Used Available Capacity Mounted on"\n'
        'echo "/dev/fake 999999999 1 $FAKE_DF_FREE_KIB 50% /"\n'
    )
    df.chmod(0o755)
    return bin_dir


def env_with(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GEO_R_SKIP_SPACE_CHECK", "FAKE_DF_FREE_KIB", "SFT_VENV"}}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.update(extra)
    return env


def check(bin_dir: Path, folder: Path, need_gib: int, **extra: str) -> subprocess.CompletedProcess:
    script = f'source "{REPO}/run_scripts/disk_space.sh"; require_free_space "{folder}" {need_gib} "the install"'
    return subprocess.run(["bash", "-c", script], env=env_with(bin_dir, **extra), capture_output=True, text=True)


def test_too_little_space_is_refused_with_the_figures(fake_df, tmp_path):
    result = check(fake_df, tmp_path, 7, FAKE_DF_FREE_KIB=str(3 * GIB_KIB + 512 * 1024))
    assert result.returncode == 1
    assert f"the install needs about 7 GiB free on the disk that holds {tmp_path}" in result.stderr
    assert "it has 3 GiB (3584 MiB) free" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [{"FAKE_DF_FREE_KIB": str(7 * GIB_KIB)}, {"FAKE_DF_FREE_KIB": "1", "GEO_R_SKIP_SPACE_CHECK": "1"}, {}],
    ids=["enough-space", "skipped-on-request", "df-cannot-tell"],
)
def test_enough_space_a_requested_skip_or_an_unreadable_df_let_the_install_go_ahead(fake_df, tmp_path, extra):
    result = check(fake_df, tmp_path, 7, **extra)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def installer_copy(tmp_path: Path) -> Path:
    """The files setup.sh and setup_sft_env.sh read, in a folder of their own, with no environment yet."""
    root = tmp_path / "repo"
    (root / "run_scripts").mkdir(parents=True)
    for name in ["setup.sh", "requirements.txt", "requirements-dev.txt", "requirements-gpu.txt",
                 "requirements-sft.txt", "pyproject.toml"]:
        shutil.copy(REPO / name, root / name)
    for name in ["disk_space.sh", "setup_sft_env.sh"]:
        shutil.copy(REPO / "run_scripts" / name, root / "run_scripts" / name)
    return root


def test_setup_on_a_full_disk_stops_before_making_the_environment(fake_df, tmp_path):
    root = installer_copy(tmp_path)
    result = subprocess.run(["bash", str(root / "setup.sh"), "--cpu", "--dev"], cwd=tmp_path, capture_output=True,
                            text=True, env=env_with(fake_df, FAKE_DF_FREE_KIB=str(GIB_KIB)))
    assert result.returncode == 1
    assert f"setup.sh (.venv) needs about 7 GiB free on the disk that holds {root}" in result.stderr
    assert not (root / ".venv").exists()


def test_the_llamafactory_environment_on_a_full_disk_stops_before_it_is_made(fake_df, tmp_path):
    root = installer_copy(tmp_path)
    sft_venv = tmp_path / "envs" / "sft"
    result = subprocess.run(["bash", str(root / "run_scripts" / "setup_sft_env.sh")], cwd=tmp_path,
                            capture_output=True, text=True,
                            env=env_with(fake_df, FAKE_DF_FREE_KIB=str(GIB_KIB), SFT_VENV=str(sft_venv)))
    assert result.returncode == 1
    assert f"setup_sft_env.sh ({sft_venv}) needs about 7 GiB free on the disk that holds {sft_venv.parent}" in result.stderr
    assert not sft_venv.exists()
