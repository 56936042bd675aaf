"""Things tests make: small real clips (a moving gradient, with audio, odd timestamps or a
drawing of the test's own), and a custodian's key pair. Tests import these from here, never
from a conftest: a folder's own conftest would shadow the top one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


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


@dataclass(frozen=True)
class Custodian:
    """A custodian's key pair made by the real tools: `identity` opens what `recipient` seals."""

    identity: Path
    recipient: str
