"""`./scripts/demo`, run as a newcomer runs it: again in a folder where it ran before, where
it must make and report its own package, not the one the earlier run left."""

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


def leave_an_earlier_run(demo: Path) -> Path:
    """What a finished run leaves in DIR: its daemon's log, which says "started", and its
    folders, with its package in the outbox. (Made here rather than by a first run: the
    run itself is the same as the one under test, and took half a minute.)"""
    folders = demo / "privmask"
    for name in ("inbox", "outbox", "quarantine", "state"):
        (folders / name).mkdir(parents=True)
    (demo / "daemon.log").write_text('{"event": "started", "level": "info"}\n')
    earlier = folders / "outbox" / "CAM01_demo_earlier.zip"
    earlier.write_bytes(b"the earlier run's package")
    return earlier


def test_a_second_run_reports_the_package_it_made(models_dir: Path, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    earlier = leave_an_earlier_run(demo)
    second_run, second = run_demo(demo, models_dir)
    assert second.is_file() and second != earlier and not earlier.exists()
    assert second.is_relative_to(demo / "privmask" / "outbox")
    assert second.read_bytes()[:4] == b"PK\x03\x04"  # a zip, made by this run
    assert f"export PRIVMASK_MODELS={models_dir}" in second_run.stdout
