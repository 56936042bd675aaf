"""The ONVIF replay peer for tests: small recordings with known start times, served by
`replay_server.py` (GStreamer, run by Debian's system Python) on loopback.

    clip = write_recording(tmp / "a.mp4", "h264", seconds=4)
    with ReplayServer([Served("/rec", START, clip, "h264")], user="u", password="p") as server:
        replay(server.url("/rec"), "u", "p", ...)
        server.requests()   # what the client sent, one dict per request
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from harness import start_peer, stop_peer

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gi
FPS = 25


@dataclass(frozen=True)
class Served:
    mount: str  # "/h264"
    start: datetime  # the recording's first frame, UTC
    clip: Path
    codec: str  # "h264" or "h265"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_recording(
    path: Path,
    codec: str,
    seconds: int = 4,
    gop: int = FPS,
    b_frames: int = 0,
    hole: tuple[int, int] | None = None,
) -> Path:
    """A small clip (160x128, 25 fps, a keyframe every `gop` frames) whose every frame
    differs from the others, so decoded pictures identify their frame. `hole` = (frame,
    seconds): from that frame on, the recording resumes so many seconds later (a recorder's
    timeline with a gap; use a keyframe's index)."""
    encoder = {"h264": "libx264", "h265": "libx265"}[codec]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        if codec == "h264":
            stream.options = {"g": str(gop), "keyint_min": str(gop), "preset": "veryfast",
                              "bf": str(b_frames)}  # fmt: skip
        else:
            params = f"keyint={gop}:min-keyint={gop}:bframes={b_frames}:log-level=error"
            stream.options = {"preset": "veryfast", "x265-params": params}
        for index in range(seconds * FPS):
            frame = av.VideoFrame.from_ndarray(_picture(index), format="bgr24")
            frame.pts = index
            if hole is not None and index >= hole[0]:
                frame.pts += hole[1] * FPS
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _picture(index: int) -> np.ndarray:
    image = np.zeros((128, 160, 3), np.uint8)
    image[:, :, 1] = (index * 7) % 256
    x = (index * 3) % 120
    image[40:80, x : x + 40] = 255
    image[100:120, :] = (index * 2) % 256
    return image


def decoded(clip: Path) -> list[np.ndarray]:
    """Every frame of `clip` as a yuv420p array, in presentation order."""
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


class ReplayServer:
    """replay_server.py in a subprocess, serving `recordings` at rtsp://127.0.0.1:PORT."""

    def __init__(
        self,
        recordings: list[Served],
        user: str | None = None,
        password: str | None = None,
        die_after: int | None = None,
    ) -> None:
        self.recordings, self.user, self.password = recordings, user, password
        self.die_after = die_after
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="privmask-replay-"))
        self.log = self.folder / "requests.jsonl"
        self.process: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def start(self) -> ReplayServer:
        command = [SYSTEM_PYTHON, str(HERE / "replay_server.py"), "--port", str(self.port)]
        command += ["--log", str(self.log)]
        for served in self.recordings:
            start = served.start.isoformat()
            command += ["--recording", served.mount, start, str(served.clip), served.codec]
        if self.user is not None:
            secret = self.folder / "password"
            secret.write_text(self.password or "")
            command += ["--user", self.user, "--password-file", str(secret)]
        if self.die_after is not None:
            command += ["--die-after", str(self.die_after)]
        self.process = start_peer(command, f"replay server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_peer(self.process)
            self.process = None
        for child in self.folder.iterdir():
            child.unlink()
        self.folder.rmdir()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
