"""Real RTSP peers on loopback for the live tests and the benchmark (no mocks).

- camera: gst-rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good,
  gstreamer1.0-plugins-bad, python3-gi), serving a stamped synthetic scene over RTSP/TCP,
  run by the system Python in a subprocess (`camera_server.py`).
- viewer: FFmpeg's own RTSP demuxer in listen mode (PyAV, `rtsp_flags=listen`): it accepts
  one ANNOUNCE/RECORD publisher over TCP, as mediamtx would, and decodes what it receives.

Frames carry their index as a 16-bit barcode in the bottom-left corner, so a received frame
is matched to its source frame whatever was dropped or delayed on the way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from privmask.daemon.testing import FaceSpec, PersonSprite, Scene, render_scene, write_frames

from harness import start_peer, stop_peer

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gi
BITS = 16
CELL = 16  # pixels per barcode bit (square)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stamp(image: np.ndarray, index: int) -> None:
    """Write `index` as black/white cells along the bottom-left edge, in place."""
    h = image.shape[0]
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        image[h - CELL : h, bit * CELL : (bit + 1) * CELL] = value


def read_luma_stamp(frame: av.VideoFrame) -> int:
    """The stamp of a decoded yuv420p frame, read from its luma plane's bottom rows."""
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return read_stamp(rows[plane.height - CELL :, : BITS * CELL])


def read_stamp(image: np.ndarray) -> int:
    h = image.shape[0]
    index = 0
    for bit in range(BITS):
        cell = image[h - CELL + 4 : h - 4, bit * CELL + 4 : (bit + 1) * CELL - 4]
        if float(cell.mean()) > 128:
            index |= 1 << bit
    return index


def stamped_scene(
    width: int,
    height: int,
    seconds: float,
    faces: Sequence[FaceSpec],
    fps: int = 25,
    people: Sequence[PersonSprite] = (),
) -> tuple[Scene, Iterator[np.ndarray]]:
    """render_scene's frames with their index stamped in (the stamp area holds no face)."""
    scene, frames = render_scene(
        width=width,
        height=height,
        fps=fps,
        seconds=seconds,
        faces=faces,
        person_sprites=people,
        pillar=None,
    )

    def stamped() -> Iterator[np.ndarray]:
        for index, image in enumerate(frames):
            stamp(image, index)
            yield image

    return scene, stamped()


def write_camera_clip(
    path: Path,
    width: int,
    height: int,
    seconds: float,
    faces: Sequence[FaceSpec],
    fps: int = 25,
    gop: int | None = None,
    people: Sequence[PersonSprite] = (),
) -> Scene:
    """The stamped scene as H.264 (with B-frames, as x264 makes them by default); `gop`:
    a keyframe every so many frames, as a camera sets it (None: x264's default, 250)."""
    scene, frames = stamped_scene(width, height, seconds, faces, fps, people)
    if gop is None:
        write_frames(path, frames, fps=fps, size=(width, height), crf=20)
        return scene
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, fps)
        video.options = {"crf": "20", "preset": "veryfast", "g": str(gop), "keyint_min": str(gop)}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return scene


class CameraServer:
    """gst-rtsp-server in a subprocess, serving `clip` at rtsp://127.0.0.1:PORT/cam."""

    def __init__(self, clip: Path, port: int | None = None) -> None:
        self.clip, self.port = clip, port or free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> CameraServer:
        command = [SYSTEM_PYTHON, str(HERE / "camera_server.py"), "--port", str(self.port)]
        command += ["--file", str(self.clip)]
        self.process = start_peer(command, f"camera server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_peer(self.process)
            self.process = None

    def __enter__(self) -> CameraServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Received:
    index: int  # the stamped source frame index
    at: float  # time.monotonic() when decoded
    image: np.ndarray | None  # BGR, when kept


@dataclass
class Viewer:
    """An RTSP server for one publisher (FFmpeg listen mode), decoding in a thread."""

    port: int = field(default_factory=free_port)
    keep_images: bool = True
    decode: bool = True  # False: count packets only (no stamp), to spare the CPU
    stamps_only: bool = False  # read the stamp from the luma plane (no colour conversion)
    frames: list[Received] = field(default_factory=list)
    error: str = ""
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self, listen_timeout_s: int = 30) -> Viewer:
        self._thread = threading.Thread(target=self._run, args=(listen_timeout_s,), daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let it bind before a publisher tries to connect
        return self

    def _run(self, listen_timeout_s: int) -> None:
        options = {
            "rtsp_flags": "listen",
            "rtsp_transport": "tcp",
            "listen_timeout": str(listen_timeout_s),
        }
        try:
            with av.open(self.url, "r", options=options) as container:
                if not self.decode:
                    for packet in container.demux(video=0):
                        if packet.size:
                            self.frames.append(Received(-1, time.monotonic(), None))
                    return
                for frame in container.decode(video=0):
                    if self.stamps_only:
                        self.frames.append(Received(read_luma_stamp(frame), time.monotonic(), None))
                        continue
                    image: Any = frame.to_ndarray(format="bgr24")
                    self.frames.append(
                        Received(
                            read_stamp(image),
                            time.monotonic(),
                            image if self.keep_images else None,
                        )
                    )
        except (av.error.FFmpegError, OSError) as exc:
            self.error = str(exc)

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


def wait_for(predicate: Any, timeout_s: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


if __name__ == "__main__":  # a quick manual check: python peers.py clip.mp4
    with CameraServer(Path(sys.argv[1])) as server:
        print(server.url)
        time.sleep(60)
