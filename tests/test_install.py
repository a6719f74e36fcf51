"""`make venv`: where torch comes from. Only the commands `make -n` would run are read; nothing is installed."""

import os
import shutil
import subprocess

import pytest
from helpers import ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PINNED = "pip install -q torch==2.14.1 torchvision==0.29.1"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def fresh_clone(tmp_path):
    """The files `make venv` reads, in a folder without .venv (as a fresh clone is)."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "setup.py"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    return tmp_path


def planned_pip_lines(folder, args=(), env_extra=None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX"}
    env.update(env_extra or {})
    out = subprocess.run(["make", "-n", "venv", *args], cwd=folder, env=env, capture_output=True, text=True,
                         timeout=600, check=True).stdout
    return [line for line in out.splitlines() if "pip install" in line]


def test_by_default_torch_comes_from_pypi_as_pinned(fresh_clone):
    lines = planned_pip_lines(fresh_clone)
    assert lines[0].endswith(PINNED)
    assert not any("--index-url" in line for line in lines)


@pytest.mark.parametrize("how", ["make argument", "environment variable"])
def test_torch_index_reaches_the_pip_command_of_torch_and_torchvision_only(fresh_clone, how):
    if how == "make argument":
        lines = planned_pip_lines(fresh_clone, args=[f"TORCH_INDEX={CPU_INDEX}"])
    else:
        lines = planned_pip_lines(fresh_clone, env_extra={"TORCH_INDEX": CPU_INDEX})
    assert lines[0].endswith(f"{PINNED} --index-url {CPU_INDEX}")
    assert not any("--index-url" in line for line in lines[1:])  # the other packages still come from PyPI


def test_install_page_shows_the_cpu_command_that_the_makefile_reads():
    page = open(os.path.join(ROOT, "INSTALL.md"), encoding="utf-8").read()
    assert f"TORCH_INDEX={CPU_INDEX} make venv" in page
    assert "TORCH_INDEX ?=" in open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
