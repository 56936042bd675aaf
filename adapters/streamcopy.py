"""The camera's own packets, stream-copied into an unmasked file beside each masked segment.

A masked segment holds no personal data; the unmasked original of the same span is what
authorised people may be given later (the daemon escrows it, encrypted). It is the packets
as the camera sent them, remuxed into MP4 with PyAV: nothing is decoded or re-encoded, so
no picture is changed or lost. A file can only start at a keyframe, so an original starts
at the camera's last keyframe at or before its masked segment's first frame (up to a
keyframe interval earlier) and ends at least where the masked segment ends: frames leave
the live delay buffer well after their packets came in.

What is held in memory is bounded: the packets since the newest keyframe an original could
still start from (about one keyframe interval, plus the delay), and never more than
`max_bytes`. Failures here never stop the masked stream: an original that cannot be made
is reported by `end()` with the reason, and the masked segment goes on without one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error

from privmask.adapters import files

MAX_HELD_BYTES = 64 << 20  # a 10 s keyframe interval at 50 Mbit/s
_MAX_PENDING = 50  # packets waiting for a timestamp before they are given made-up ones
_MODE = 0o600  # an unmasked picture: the daemon's own, until it is escrowed


@dataclass(frozen=True)
class Copied:
    """What `StreamCopy.end` made: the file, or why there is none; and how long before
    the masked segment's first frame it starts (at the camera's keyframe), in seconds."""

    path: Path | None
    missing: str = ""
    lead_s: float = 0.0


@dataclass(frozen=True)
class _Packet:
    data: bytes
    pts: int  # in the camera stream's time base
    dts: int
    key: bool


class StreamCopy:
    """Fed every packet of a camera's video stream (`add`); `begin` an original for a
    masked segment, `release` what no later segment can start from, `end` it."""

    def __init__(
        self,
        template: av.video.stream.VideoStream,
        rate: Fraction,
        stream_time: Callable[[int], int | None],
        max_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        self._template = template
        self._time_base = template.time_base or Fraction(1, 90000)
        self._step = max(1, round(1 / (rate * self._time_base)))  # one frame
        # a masked frame's pts -> the time of its packet in this stream (None: not known yet)
        self._stream_time = stream_time
        self._max_bytes = max_bytes
        self._pending: list[tuple[bytes, int | None, int | None, bool]] = []
        self._held: deque[_Packet] = deque()
        self._held_bytes = 0
        self._last_dts: int | None = None
        self._writer: _CopyWriter | None = None
        self._problem = ""  # why the original being made cannot be had
        self._lead_s = 0.0  # how long before its masked segment it starts

    def add(self, packet: av.Packet) -> None:
        """A packet as demuxed, before it is decoded (flush packets are ignored)."""
        if not packet.size:
            return
        self._pending.append((bytes(packet), packet.pts, packet.dts, packet.is_keyframe))
        if packet.dts is None and len(self._pending) < _MAX_PENDING:
            return  # the first packets of an RTSP connection come without timestamps
        for settled in self._settle():
            self._hold(settled)

    def begin(self, target: Path, pts: int) -> None:
        """Start the original for a masked segment whose first frame has `pts`."""
        self.discard()
        at = self._stream_time(pts)
        if at is None:
            self._problem = "the camera's stream has no timestamps to place it by"
            return
        starts = [i for i, p in enumerate(self._held) if p.key and p.pts <= at + self._step // 2]
        if not starts:
            self._problem = "no keyframe of the camera's at or before the segment's start"
            return
        self._lead_s = max(0.0, float((at - self._held[starts[-1]].pts) * self._time_base))
        try:
            self._writer = _CopyWriter(target, self._template)
            for index in range(starts[-1], len(self._held)):
                self._writer.write(self._held[index])
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            self._fail(exc)

    def release(self, pts: int) -> None:
        """Masked frames up to `pts` are written: no later segment starts before it."""
        at = self._stream_time(pts)
        if at is None:
            return
        keys = [i for i, p in enumerate(self._held) if p.key and p.pts <= at]
        for _ in range(keys[-1] if keys else 0):
            self._drop()

    def end(self) -> Copied:
        """Finish the original begun last, and publish it."""
        writer, problem = self._writer, self._problem
        self._writer, self._problem = None, ""
        if writer is None:
            return Copied(None, problem or "no unmasked segment was begun")
        try:
            return Copied(writer.finish(), "", round(self._lead_s, 3))
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            writer.discard()
            return Copied(None, f"the unmasked segment could not be written: {_reason(exc)}")

    def discard(self) -> None:
        """Abandon the original being made, leaving nothing behind."""
        if self._writer is not None:
            self._writer.discard()
        self._writer, self._problem = None, ""

    def _fail(self, exc: BaseException) -> None:
        self.discard()
        self._problem = f"the unmasked segment could not be written: {_reason(exc)}"

    def _hold(self, packet: _Packet) -> None:
        self._held.append(packet)
        self._held_bytes += len(packet.data)
        if self._writer is not None:
            try:
                self._writer.write(packet)
            except (av.error.FFmpegError, ValueError, OSError) as exc:
                self._fail(exc)
        while self._held_bytes > self._max_bytes:
            # whole keyframe intervals go, oldest first: an original needs its keyframe
            self._drop()
            while self._held and not self._held[0].key:
                self._drop()

    def _drop(self) -> None:
        self._held_bytes -= len(self._held.popleft().data)

    def _settle(self) -> list[_Packet]:
        """Timestamps for the pending packets, as MP4 needs them: the last one's dts is the
        camera's (unless too many waited); earlier ones count back from it a frame each.
        A keyframe's missing pts is the frame before the earliest one shown after it."""
        pending, self._pending = self._pending, []
        anchor = pending[-1][2]
        if anchor is None:
            anchor = (self._last_dts or 0) + len(pending) * self._step
        settled = []
        for i, (data, pts, dts, key) in enumerate(pending):
            if dts is None:
                dts = anchor - (len(pending) - 1 - i) * self._step
            if pts is None:  # a keyframe is shown before what follows it; others: as decoded
                later = [p for _, p, _, _ in pending[i + 1 :] if p is not None]
                pts = min(later) - self._step if key and later else dts
            if self._last_dts is not None and dts <= self._last_dts:
                dts = self._last_dts + 1  # a muxer refuses dts that do not increase
            self._last_dts = dts
            settled.append(_Packet(data, max(pts, dts), dts, key))
        return settled


class _CopyWriter:
    """One MP4 file of copied packets, under a hidden name until `finish` publishes it."""

    def __init__(self, target: Path, template: av.video.stream.VideoStream) -> None:
        self.target = target
        self.staging = files.temporary_name(target)
        # made here with its mode: FFmpeg opens it again without changing that
        os.close(os.open(self.staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE))
        self._container: av.container.OutputContainer | None = None
        try:
            self._container = cast(
                av.container.OutputContainer,
                av.open(str(self.staging), "w", format="mp4", options={"movflags": "+faststart"}),
            )
            self._stream = self._container.add_stream_from_template(template)
        except BaseException:
            self.discard()
            raise
        self._time_base = template.time_base or Fraction(1, 90000)
        self._offset: int | None = None

    def write(self, held: _Packet) -> None:
        if self._container is None:
            raise ValueError("the file is closed")
        if self._offset is None:
            self._offset = held.dts  # the file's time starts at its first packet
        packet = av.Packet(held.data)  # a copy: muxing takes the packet's data over
        packet.pts, packet.dts = held.pts - self._offset, held.dts - self._offset
        packet.time_base = self._time_base
        packet.is_keyframe = held.key
        packet.stream = self._stream
        self._container.mux(packet)

    def finish(self) -> Path:
        if self._container is None:
            raise ValueError("the file is closed")
        container, self._container = self._container, None
        container.close()
        files.publish(self.staging, self.target, overwrite=True)
        return self.target

    def discard(self) -> None:
        if self._container is not None:
            with suppress(av.error.FFmpegError, ValueError, OSError):
                self._container.close()
            self._container = None
        files.remove(self.staging)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
