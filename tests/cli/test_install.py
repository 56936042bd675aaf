"""A non-editable install, as a site gets it from a wheel: what it carries besides code.

The wheel is built from a copy of the source (so the work tree gets no build/ folder) by
pip with build isolation: pip installs the build backend that pyproject.toml asks for from
the package index configured on the machine, as ./scripts/setup does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "daemon", "adapters", "rules")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[zipfile.ZipFile, str]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=skip)
        else:
            shutil.copy2(REPO / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(work / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = (work / "dist").glob("privmask-*.whl")
    return zipfile.ZipFile(built), done.stdout + done.stderr


def test_the_wheel_carries_the_rule_examples(wheel: tuple[zipfile.ZipFile, str]) -> None:
    names = set(wheel[0].namelist())
    examples = sorted(p.name for p in (REPO / "rules" / "examples").glob("*.yaml"))
    assert examples
    for name in examples:
        assert f"privmask/rules/examples/{name}" in names


def test_setuptools_ignores_no_data_folder(wheel: tuple[zipfile.ZipFile, str]) -> None:
    log = wheel[1]
    assert "absent from the `packages` configuration" not in log
    assert "would be ignored" not in log
