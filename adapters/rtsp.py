"""RTSP in and out through PyAV: pull a camera's stream, publish a masked one, cut segments.

Everything runs over TCP (interleaved RTP): UDP loses packets on busy networks and does not
cross NAT or firewalls, and a lost packet in a masked stream smears the picture. Every
FFmpeg failure becomes an `RtspError` whose message names the URL without its credentials,
because these messages end up in logs.

A source made with `keep_packets` also hands every packet, before it is decoded, to its
`StreamCopy` (`streamcopy.py`), which a `SegmentWriter` uses to put the camera's own
packets for the same span beside each masked segment.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error

from privmask.adapters import files, urls
from privmask.adapters.streamcopy import Copied, StreamCopy
from privmask.adapters.video import EncoderSettings, as_yuv420p

OUT_TIME_BASE = Fraction(1, 90000)  # RTP's video clock; MP4 keeps it too
ORIGINAL_SUFFIX = ".original"  # beside `<job>.mp4`; never taken for a masked segment


class RtspError(Exception):
    """A stream cannot be opened, read or written; the message never holds credentials."""


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


@dataclass(frozen=True)
class SourceOptions:
    """How long to wait: a camera that hangs must not hang its thread forever."""

    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0


class RtspSource:
    """A camera's stream pulled over RTSP/TCP: its frame rate, and its decoded frames as
    yuv420p with timestamps in OUT_TIME_BASE counted from this connection's start. Every
    FFmpeg failure is an RtspError without credentials. Use as a context manager.

    With `keep_packets`, `packets` is the StreamCopy that sees every packet as received."""

    def __init__(
        self, url: str, options: SourceOptions = SourceOptions(), keep_packets: bool = False
    ) -> None:
        self.url, self.safe_url = url, urls.redact(url)
        self._container = _open_source(url, options)
        stream = self._container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        self.rate = rate if 0 < rate <= 240 else Fraction(25)
        self._stream = stream
        self._clock = _Clock(self.rate)
        self.packets = StreamCopy(stream, self.rate, self._stream_time) if keep_packets else None

    def _stream_time(self, pts: int) -> int | None:
        """A frame's pts (OUT_TIME_BASE, from this connection's start) in the stream's own
        time base, as its packet had it; None until a frame came with a timestamp."""
        origin, time_base = self._clock.origin, self._stream.time_base
        if origin is None or not time_base:
            return None
        return round((pts + origin) * OUT_TIME_BASE / time_base)

    def frames(self) -> Iterator[av.VideoFrame]:
        clock = self._clock
        try:
            for packet in self._container.demux(self._stream):
                if self.packets is not None:
                    self.packets.add(packet)
                for decoded in packet.decode():
                    frame = as_yuv420p(decoded)
                    clock.stamp(frame)
                    yield frame
        except av.error.FFmpegError as exc:
            reason = urls.scrub(_reason(exc), self.url)  # str() of it quotes the URL
            raise RtspError(f"{self.safe_url}: {reason}") from None

    def close(self) -> None:
        with suppress(av.error.FFmpegError, OSError):
            self._container.close()

    def __enter__(self) -> RtspSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Clock:
    """Output timestamps (OUT_TIME_BASE, from 0 per connection) that follow the source's.

    RTSP sources leave the first frame (or a few) without a timestamp; those get the
    nominal frame step, and the origin is set so that later frames line up with them.
    """

    def __init__(self, rate: Fraction) -> None:
        self.step = max(1, round(1 / (rate * OUT_TIME_BASE)))
        self._origin: int | None = None
        self._count = 0
        self._last: int | None = None

    @property
    def origin(self) -> int | None:
        """The source time (in OUT_TIME_BASE) of pts 0, once a frame had a timestamp."""
        return self._origin

    def stamp(self, frame: av.VideoFrame) -> None:
        if frame.pts is not None and frame.time_base:
            source = round(frame.pts * frame.time_base / OUT_TIME_BASE)
            if self._origin is None:
                self._origin = source - self._count * self.step
            pts = source - self._origin
        else:
            pts = 0 if self._last is None else self._last + self.step
        if self._last is not None and pts <= self._last:
            pts = self._last + 1
        frame.pts, frame.time_base = pts, OUT_TIME_BASE
        self._last = pts
        self._count += 1


def _open_source(url: str, options: SourceOptions) -> av.container.InputContainer:
    """Open a camera stream over RTSP/TCP; raise RtspError (credential-free) on failure."""
    safe = urls.redact(url)
    socket_us = str(int(options.read_timeout_s * 1_000_000))
    try:
        container = av.open(
            url,
            "r",
            options={"rtsp_transport": "tcp", "timeout": socket_us},
            timeout=(options.open_timeout_s, options.read_timeout_s),
        )
    except av.error.FFmpegError as exc:
        raise RtspError(f"cannot open {safe}: {_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise RtspError(f"{safe}: offers no video stream")
    return cast(av.container.InputContainer, container)


class _Encoder:
    """One H.264 video stream in an output container, fed yuv420p frames with rebased pts."""

    def __init__(
        self,
        container: av.container.OutputContainer,
        width: int,
        height: int,
        rate: Fraction,
        settings: EncoderSettings,
        live: bool,
    ) -> None:
        self.container = container
        stream = container.add_stream(settings.codec, rate=rate)
        self.stream = cast(av.video.stream.VideoStream, stream)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = self.stream.codec_context.time_base = OUT_TIME_BASE
        options = {"crf": str(settings.crf), "preset": settings.preset}
        if live:
            # no lookahead, no B-frames: a frame leaves the encoder as soon as it is in
            options["tune"] = "zerolatency"
            options["g"] = str(max(1, round(float(rate) * 2)))  # a keyframe every 2 s
            # zerolatency splits each frame into slices, one per thread; x264's default of
            # 1.5 threads a core cost a fifth more CPU a frame than two (720p, 2 cores)
            options["threads"] = "2"
        self.stream.options = options
        self._last_pts: int | None = None
        self.frames = 0

    def encode(self, frame: av.VideoFrame, pts: int) -> None:
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # a muxer refuses timestamps that do not increase
        self._last_pts = pts
        frame.pts, frame.time_base = pts, OUT_TIME_BASE
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def flush(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class RtspPublisher:
    """Publish H.264 to an RTSP server (mediamtx, go2rtc) with ANNOUNCE/RECORD over TCP.

    The connection is made on the first frame, once the encoder's parameter sets exist.
    """

    def __init__(
        self,
        url: str,
        width: int,
        height: int,
        rate: Fraction,
        settings: EncoderSettings,
        timeout_s: float = 5.0,
    ) -> None:
        self.safe_url = urls.redact(url)
        try:
            self._container = cast(
                av.container.OutputContainer,
                av.open(
                    url,
                    "w",
                    format="rtsp",
                    options={"rtsp_transport": "tcp"},
                    timeout=(timeout_s, timeout_s),
                ),
            )
            self._encoder = _Encoder(self._container, width, height, rate, settings, live=True)
        except (av.error.FFmpegError, ValueError) as exc:
            raise RtspError(f"cannot publish to {self.safe_url}: {_reason(exc)}") from None

    def write(self, frame: av.VideoFrame, pts: int) -> None:
        try:
            self._encoder.encode(frame, pts)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise RtspError(f"publishing to {self.safe_url} failed: {_reason(exc)}") from None

    def close(self) -> None:
        """Flush and hang up; a server that already went away is no error here."""
        with suppress(av.error.FFmpegError, ValueError, OSError):
            self._encoder.flush()
        with suppress(av.error.FFmpegError, ValueError, OSError):
            self._container.close()


@dataclass(frozen=True)
class SegmentFiles:
    """A finished segment: the masked file and, when asked for, the camera's own packets
    for (at least) the same span, from `original.lead_s` before the masked one's start."""

    masked: Path
    original: Copied = Copied(None)


SegmentHook = Callable[[SegmentFiles], None]


class SegmentWriter:
    """Cut the masked stream into MP4 files of about `seconds` each, in `folder`.

    A segment is written under a hidden `.partial` name and published through `files` (fsync,
    rename, fsync of the folder) only once it is complete, so a reader (the packaging step, a
    sync job) never sees half a file, and a published segment survives a power cut.
    Each segment has its own encoder and so starts with a keyframe and plays on its own.
    A segment's name is `<prefix>-<UTC start, YYYYmmddTHHMMSS>-<6 random hex>.mp4`.

    With `originals` (the source's StreamCopy), the camera's own packets for each segment go
    into `<same name>.original` (MP4, mode 600), published after the masked file: a masked
    file never waits for its original, and a crash between the two leaves no original
    without its segment. `on_segment` is called with both, from the camera's thread.
    """

    def __init__(
        self,
        folder: Path,
        prefix: str,
        seconds: float,
        width: int,
        height: int,
        rate: Fraction,
        settings: EncoderSettings,
        on_segment: SegmentHook | None = None,
        originals: StreamCopy | None = None,
    ) -> None:
        if seconds <= 0:
            raise ValueError("segment length must be positive")
        self.folder, self.prefix, self.seconds = folder, prefix, seconds
        self.width, self.height, self.rate, self.settings = width, height, rate, settings
        self.on_segment = on_segment
        self.originals = originals
        self.finished: list[Path] = []  # the latest few, newest last
        self._container: av.container.OutputContainer | None = None
        self._encoder: _Encoder | None = None
        self._staging: Path | None = None
        self._target: Path | None = None
        self._start_pts = 0

    def write(self, frame: av.VideoFrame, pts: int) -> None:
        """Add a frame whose pts (in OUT_TIME_BASE) counts from the stream's start."""
        # half a frame early: RTP timestamps jitter, and a segment must not take one too many
        cut = self.seconds - 0.5 / float(self.rate)
        if self._encoder is not None and (pts - self._start_pts) * OUT_TIME_BASE >= cut:
            self._finish()
        try:
            if self._encoder is None:
                self._begin(pts)
            if self._encoder is None:
                raise RtspError("segment encoder did not open")
            self._encoder.encode(frame, pts - self._start_pts)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            self._abandon()
            raise RtspError(f"writing a segment in {self.folder} failed: {_reason(exc)}") from None
        if self.originals is not None:
            self.originals.release(pts)

    def _begin(self, pts: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{self.prefix}-{stamp}-{secrets.token_hex(3)}.mp4"
        self._target = self.folder / name
        # no .mp4 at the end (the format is named below): a reader that globs `*.mp4`, like
        # the packaging step, must not take a segment still being written
        self._staging = files.temporary_name(self._target).with_suffix("")
        self._container = cast(
            av.container.OutputContainer,
            av.open(str(self._staging), "w", format="mp4", options={"movflags": "+faststart"}),
        )
        self._encoder = _Encoder(
            self._container, self.width, self.height, self.rate, self.settings, live=True
        )
        self._start_pts = pts
        if self.originals is not None:
            self.originals.begin(self._target.with_suffix(ORIGINAL_SUFFIX), pts)

    def _finish(self) -> None:
        encoder, container = self._encoder, self._container
        staging, target = self._staging, self._target
        self._encoder = self._container = None
        if encoder is None or container is None or staging is None or target is None:
            return
        try:
            encoder.flush()
            container.close()
            files.publish(staging, target, overwrite=True)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            files.remove(staging)
            if self.originals is not None:
                self.originals.discard()
            raise RtspError(f"finishing segment {target.name} failed: {_reason(exc)}") from None
        original = self.originals.end() if self.originals is not None else Copied(None)
        self.finished = [*self.finished[-9:], target]
        if self.on_segment is not None:
            self.on_segment(SegmentFiles(target, original))

    def _abandon(self) -> None:
        if self._container is not None:
            with suppress(av.error.FFmpegError, ValueError, OSError):
                self._container.close()
        if self._staging is not None:
            files.remove(self._staging)
        if self.originals is not None:
            self.originals.discard()
        self._encoder = self._container = None

    def close(self) -> None:
        """Finish the segment in progress: what was streamed so far is kept, complete."""
        self._finish()
