"""Replayed access units into an MP4, stream-copied, timed by the recorder's clock.

Each unit's presentation time is its 0xABAC time (relative to the first unit, at 90 kHz).
Units arrive in decoding order; with B-frames their presentation times go back and forth,
and MP4 also needs decoding times that only grow and never pass the presentation time.
They are the presentation times sorted, delayed by the stream's reordering depth, which
is measured on the first `LOOKAHEAD` units (a camera's GOP structure repeats); a stream
reordered more deeply later is refused rather than written wrong. Without B-frames,
decoding time = presentation time.

`add_mux_stream`, not `add_stream`: the latter opens an encoder (for HEVC a libx265 one).
The MP4 muxer builds avcC/hvcC itself from the parameter sets at the first keyframe.
"""

from __future__ import annotations

import heapq
from collections import deque
from contextlib import suppress
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext

from privmask.adapters.rtp import ntp_to_datetime

TIME_BASE = Fraction(1, 90000)
LOOKAHEAD = 16  # units held before muxing: more than any camera's reordering depth
DEFAULT_STEP = 3600  # 1/25 s at 90 kHz, when a clip has a single frame
CODECS = {"H264": "h264", "H265": "hevc"}


class ClipError(Exception):
    """The units cannot be written as they are (one line)."""


class ClipWriter:
    """`add` units (the first a keyframe), then `close`; `abort` on failure."""

    def __init__(self, path: Path, codec: str) -> None:
        self._codec = CODECS[codec]
        self._container = av.open(str(path), "w", format="mp4")
        self._stream: Stream | None = None
        self._origin = 0  # NTP time of the first unit
        self._held: deque[tuple[bytes, int, bool]] = deque()  # data, pts, keyframe
        self._times: list[int] = []  # heap of presentation times not yet used as a dts
        self._reorder: int | None = None
        self._index = 0  # units muxed
        self._last_dts: int | None = None
        self._step = DEFAULT_STEP

    def add(self, data: bytes, ntp: int, keyframe: bool) -> None:
        if self._stream is None:
            if not keyframe:
                raise ClipError("a clip must start at a keyframe")
            self._open(data, ntp)
        pts = round((ntp - self._origin) * 90000 / 2**32)
        self._held.append((data, pts, keyframe))
        heapq.heappush(self._times, pts)
        if self._reorder is None and len(self._held) >= LOOKAHEAD:
            self._measure()
        while self._reorder is not None and len(self._held) > LOOKAHEAD:
            self._mux_next()

    def close(self) -> None:
        if self._held and self._reorder is None:
            self._measure()
        while self._held:
            self._mux_next()
        try:
            self._container.close()
        except av.error.FFmpegError as exc:
            raise ClipError(f"the replayed video cannot be written: {exc.strerror}") from exc

    def abort(self) -> None:
        with suppress(av.error.FFmpegError, OSError):  # the staged file is removed anyway
            self._container.close()

    def _open(self, data: bytes, ntp: int) -> None:
        width, height = _picture_size(self._codec, data)
        self._origin = ntp
        created = ntp_to_datetime(ntp)
        self._container.metadata["creation_time"] = _creation_time(created)
        stream = self._container.add_mux_stream(self._codec, width=width, height=height)
        stream.time_base = TIME_BASE
        self._stream = stream

    def _measure(self) -> None:
        """The reordering depth of the held units, and their usual frame interval."""
        times = [pts for _, pts, _ in self._held]
        order = sorted(range(len(times)), key=times.__getitem__)
        rank = {arrival: position for position, arrival in enumerate(order)}
        self._reorder = max(0, max(i - rank[i] for i in range(len(times))))
        steps = sorted(b - a for a, b in zip(sorted(times), sorted(times)[1:]) if b > a)
        if steps:
            self._step = steps[len(steps) // 2]

    def _dts(self, index: int, take: bool) -> int:
        """Decoding time of unit `index`: the (index - depth)-th presentation time; before
        that, the first one stepped back."""
        assert self._reorder is not None
        if index < self._reorder:
            return self._times[0] - (self._reorder - index) * self._step
        return heapq.heappop(self._times) if take else self._times[0]

    def _mux_next(self) -> None:
        data, pts, keyframe = self._held.popleft()
        dts = self._dts(self._index, take=True)
        if dts > pts or (self._last_dts is not None and dts <= self._last_dts):
            raise ClipError("frames are reordered more deeply than at the start of the stream")
        following = self._dts(self._index + 1, take=False) if self._times else None
        assert self._stream is not None  # opened by the first add
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.time_base = TIME_BASE
        packet.pts, packet.dts = pts, dts
        packet.duration = self._step if following is None or following <= dts else following - dts
        packet.is_keyframe = keyframe
        try:
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise ClipError(f"the replayed video cannot be written: {exc.strerror}") from exc
        self._index += 1
        self._last_dts = dts


def _picture_size(codec: str, data: bytes) -> tuple[int, int]:
    """Width and height from the keyframe's parameter sets (decoding it once)."""
    context = cast(VideoCodecContext, av.CodecContext.create(codec, "r"))
    try:
        context.decode(av.Packet(data))
    except av.error.FFmpegError as exc:
        raise ClipError(f"the first keyframe does not decode: {exc.strerror}") from exc
    if not context.width or not context.height:
        raise ClipError("the first keyframe has no picture size")
    return context.width, context.height


def _creation_time(moment: datetime) -> str:
    # MP4 keeps whole seconds; the caller returns the exact time beside the file
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
