"""`./scripts/demo`, run as a newcomer runs it: twice in a row, each run its own package."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo"


def run_demo(folder: Path, models: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = subprocess.run(
        [str(DEMO), str(folder)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PRIVMASK_MODELS": str(models)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"^package:\s+(\S+)$", done.stdout, re.MULTILINE)
    assert found, done.stdout
    return done, Path(found[1])


def test_a_second_run_reports_the_package_it_made(models_dir: Path, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    _, first = run_demo(demo, models_dir)
    first_package = first.read_bytes()
    second_run, second = run_demo(demo, models_dir)
    # every package is encrypted with a fresh salt: the same bytes are the same package
    assert second.is_file() and second.read_bytes() != first_package
    assert second.is_relative_to(demo / "privmask" / "outbox")
    assert f"export PRIVMASK_MODELS={models_dir}" in second_run.stdout
