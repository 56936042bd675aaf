"""Shared fixtures: where the shared models and media are, and a maker of small real clips."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

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


def write_clip(
    path: Path,
    frames: int = 30,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: str | None = None,
    audio_seconds: float | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    draw: Callable[[int, np.ndarray], None] | None = None,
) -> Path:
    """Write a real clip: a moving gradient, optionally audio, custom timestamps, rotation."""
    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if time_base is not None:
            video.time_base = time_base
            video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=16000 if audio != "aac" else 48000)
            sound.layout = "mono"
        ramp = np.linspace(0, 255, width, dtype=np.float32)
        for index in range(frames):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[:] = ((ramp + index * 7) % 256).astype(np.uint8)[None, :, None]
            image[:, :, 1] = (np.arange(height) * 255 // max(1, height - 1)).astype(np.uint8)[
                :, None
            ]
            if draw:
                draw(index, image)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = pts[index] if pts is not None else index
            if time_base is None:
                frame.time_base = Fraction(1, fps)
            else:
                frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
        if sound is not None:
            _write_tone(container, sound, seconds=audio_seconds or frames / fps)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def _write_tone(container, stream, seconds: float) -> None:  # type: ignore[no-untyped-def]
    rate = stream.codec_context.sample_rate
    fmt = stream.codec_context.format.name
    chunk = 1024
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        t = np.arange(start, min(total, start + chunk)) / rate
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        if fmt.startswith("s16"):
            data = (wave * 32767).astype(np.int16)[None, :]
        else:
            data = wave.astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


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


@dataclass(frozen=True)
class Custodian:
    """A custodian's key pair made by the real tools: `identity` opens what `recipient` seals."""

    identity: Path
    recipient: str


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
