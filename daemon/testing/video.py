"""Clips on disk: H.264 MP4 files written from and read back as BGR frames.

Frames are written with the same encoder a camera would use (H.264, yuv420p), so detectors
see compression artefacts; `audio=True` adds a mono tone to check that audio survives.
Image and Box, the types every module of this package speaks in, are defined here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[Any]
"""A BGR uint8 frame or crop (loosely typed: OpenCV and PyAV return untyped arrays)."""
Box = tuple[int, int, int, int]
"""x1, y1, x2, y2 in frame pixels; x2 and y2 are exclusive, as in `frame[y1:y2, x1:x2]`."""

AUDIO_RATE = 48000
AUDIO_TONE_HZ = 440.0


def _open_writer(
    path: Path, w: int, h: int, fps: int, crf: int, audio: bool
) -> tuple[av.container.OutputContainer, av.VideoStream, av.AudioStream | None]:
    container = av.open(str(path), mode="w")
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.time_base = Fraction(1, fps)
    video.options = {"crf": str(crf), "preset": "veryfast"}
    sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
    return container, video, sound


def _tone(start: int, count: int) -> av.AudioFrame:
    t = (np.arange(start, start + count) / AUDIO_RATE).astype(np.float64)
    samples = (0.2 * np.sin(2 * np.pi * AUDIO_TONE_HZ * t)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
    frame.sample_rate, frame.pts = AUDIO_RATE, start
    return frame


def write_frames(
    path: str | Path,
    frames: Iterable[Image],
    *,
    fps: int,
    size: tuple[int, int],
    crf: int = 23,
    audio: bool = False,
) -> None:
    """Encode BGR frames as H.264 yuv420p MP4 with pts counted in frames (1/fps)."""
    container, video, sound = _open_writer(Path(path), size[0], size[1], fps, crf, audio)
    with container:
        samples = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
            # Keep audio abreast of the video so the file is interleaved like a recorder's.
            while sound is not None and samples < (i + 1) * AUDIO_RATE // fps:
                container.mux(sound.encode(_tone(samples, 1024)))
                samples += 1024
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))


def read_frames(path: str | Path) -> Iterator[Image]:
    """Every video frame of a file, decoded to BGR, in presentation order."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")
