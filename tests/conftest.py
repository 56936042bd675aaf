"""Shared fixtures: where the shared models and media are, and a maker of small real clips."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clips import Custodian, write_clip
from harness import Daemon

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The real detector models; tests that need them never skip (CI points here too)."""
    folder = Path(os.environ.get("PRIVMASK_MODELS", SHARED / "models"))
    if not (folder / "face_detection_yunet_2023mar.onnx").is_file():
        pytest.fail(f"detector models not found in {folder}; set PRIVMASK_MODELS")
    return folder


@pytest.fixture(scope="session")
def media_dir() -> Path:
    folder = SHARED / "media"
    if not folder.is_dir():
        pytest.fail(f"sample media not found in {folder}")
    return folder


@pytest.fixture
def daemon(tmp_path: Path, models_dir: Path) -> Iterator[Daemon]:
    """A `privmask run` on folders under tmp_path (started by the test); killed, workers
    too, if the test leaves it running."""
    service = Daemon(tmp_path, models_dir)
    yield service
    if service.process is not None and service.process.poll() is None:
        service.kill()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="privmask-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4")


@pytest.fixture(scope="session")
def custodians(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Custodian]:
    """One custodian per key kind age takes: an `age-keygen` identity, an SSH ed25519 key."""
    folder = tmp_path_factory.mktemp("custodians")
    age_key = folder / "age.txt"
    subprocess.run(["age-keygen", "-o", str(age_key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(age_key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    ssh_key = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dpo", "-f", str(ssh_key)],
        check=True,
    )
    ssh_public = (folder / "id_ed25519.pub").read_text().strip()
    return {"age": Custodian(age_key, public), "ssh": Custodian(ssh_key, ssh_public)}
