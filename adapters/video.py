"""Video files through PyAV: probe, decode, encode, copy audio, verify.

Frames cross this module as PyAV `VideoFrame`s in yuv420p, writable in place, so that masking
needs no colour conversion and an unchanged frame costs no more than a plain transcode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast, get_args

import av
import av.error
import numpy as np
import numpy.typing as npt

MIN_SIDE = 16
MAX_SIDE = 8192  # 8K; anything larger in a camera export is a corrupt header
# What cameras, NVRs and VMS exports carry. Anything else is refused rather than guessed at.
SUPPORTED_CODECS = frozenset(
    {"h264", "hevc", "mjpeg", "mpeg4", "mpeg2video", "mpeg1video", "vp8", "vp9", "av1"}
)


# x264's and x265's speed presets, fastest first
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")


# What went wrong, for machines (the message says it for people). Where a code names a
# requirement that validation checks too, it is the same word as validation's rejection code.
VideoErrorCode = Literal[
    "invalid_video",  # the generic case: nothing more specific is known
    "unreadable",  # missing, or a folder
    "empty",  # 0 bytes
    "not_a_video",  # no readable container, or no video stream in it
    "unsupported_codec",  # no decoder, or a codec outside SUPPORTED_CODECS
    "resolution",  # a frame size that is implausible or odd
    "undecodable_start",  # the first frame does not decode
    "undecodable",  # decoding failed part way through
    "encode_failed",  # the output could not be opened, encoded or written
    "output_undecodable",  # verify: the output holds no keyframe, or its end does not decode
    "output_frames",  # verify: the output has the wrong number of frames
    "output_duration",  # verify: the output lasts the wrong time
]
ERROR_CODES: tuple[VideoErrorCode, ...] = get_args(VideoErrorCode)


class VideoError(Exception):
    """A clip cannot be read or written; the message says why, in words, and `code` (one
    of ERROR_CODES) says it for machines: classify by the code, never by the message."""

    def __init__(self, message: str, code: VideoErrorCode = "invalid_video") -> None:
        super().__init__(message)
        self.code: VideoErrorCode = code

    def __reduce__(self) -> tuple[type[VideoError], tuple[str, VideoErrorCode]]:
        # the code survives pickling (worker processes, task queues)
        return type(self), (str(self), self.code)


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class VideoInfo:
    """What probing a clip found; the type that validation and the pipeline share."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    frame_rate: Fraction  # average rate; the real timing is in each frame's timestamp
    time_base: Fraction
    declared_frames: int  # 0 when the container does not say
    duration_s: float
    rotation: int  # degrees counter-clockwise that a player applies on display
    sample_aspect_ratio: Fraction | None = None  # non-square pixels, e.g. 12:11 for PAL D1
    audio: tuple[AudioInfo, ...] = field(default=())

    @property
    def turns(self) -> int:
        """Quarter turns counter-clockwise from stored frame to what the viewer sees."""
        return (self.rotation // 90) % 4

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of the picture as the viewer sees it."""
        return (self.height, self.width) if self.turns % 2 else (self.width, self.height)

    @property
    def estimated_frames(self) -> int:
        if self.declared_frames:
            return self.declared_frames
        return max(1, round(self.duration_s * float(self.frame_rate)))


@dataclass(frozen=True)
class EncoderSettings:
    """How redacted video is encoded. H.264 in yuv420p plays in every ordinary player."""

    codec: str = "libx264"  # or libx265
    crf: int = 20
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if self.codec not in ("libx264", "libx265"):
            raise ValueError(f"unsupported encoder {self.codec!r} (use libx264 or libx265)")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r} (one of {', '.join(PRESETS)})")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be 0..51, got {self.crf}")


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"{path}: no such file", "unreadable")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file", "unreadable")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)", "empty")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        # gone since the check above: as unreadable as if it had never been there
        code: VideoErrorCode = "unreadable" if isinstance(exc, FileNotFoundError) else "not_a_video"
        raise VideoError(f"{path}: not a readable video container ({_reason(exc)})", code) from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def probe(path: Path) -> VideoInfo:
    """Read a clip's headers and its first frame; raise VideoError if it is unusable."""
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: contains no video stream", "not_a_video")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx.codec is None or not ctx.codec.name:
            raise VideoError(f"{path}: no decoder for its video codec", "unsupported_codec")
        if ctx.name not in SUPPORTED_CODECS:
            supported = ", ".join(sorted(SUPPORTED_CODECS))
            raise VideoError(
                f"{path}: unsupported video codec {ctx.name} (supported: {supported})",
                "unsupported_codec",
            )
        width, height = ctx.width, ctx.height
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise VideoError(
                f"{path}: implausible frame size {width}x{height} "
                f"(supported {MIN_SIDE}..{MAX_SIDE} pixels a side)",
                "resolution",
            )
        if width % 2 or height % 2:
            # 4:2:0 video, which every ordinary player needs, has no odd sizes
            raise VideoError(
                f"{path}: odd frame size {width}x{height} is not supported", "resolution"
            )
        first = _first_frame(container, stream, path)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = _duration(container, stream)
        audio = tuple(
            AudioInfo(a.codec_context.name, a.codec_context.sample_rate or 0, a.channels or 0)
            for a in container.streams.audio
        )
        return VideoInfo(
            path=path,
            container=container.format.name,
            codec=ctx.name,
            width=width,
            height=height,
            frame_rate=Fraction(rate),
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            declared_frames=int(stream.frames or 0),
            duration_s=duration,
            rotation=int(round(first.rotation or 0)),
            sample_aspect_ratio=_aspect(stream.sample_aspect_ratio),
            audio=audio,
        )


def _first_frame(container, stream, path: Path) -> av.VideoFrame:  # type: ignore[no-untyped-def]
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"{path}: video does not decode ({_reason(exc)})", "undecodable_start"
        ) from None
    raise VideoError(f"{path}: video stream holds no decodable frame", "undecodable_start")


def _aspect(ratio: Fraction | None) -> Fraction | None:
    return Fraction(ratio) if ratio and ratio != 1 else None


def _duration(container, stream) -> float:  # type: ignore[no-untyped-def]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def decode_frames(path: Path) -> Iterator[av.VideoFrame]:
    """Every video frame of a clip as writable yuv420p, in presentation order."""
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from _checked_decode(container, (stream,), path, lambda packet: None)


def _checked_decode(container, streams, path: Path, on_other_packet):  # type: ignore[no-untyped-def]
    """Demux `container`; decode video packets, hand others to `on_other_packet`."""
    video = streams[0]
    try:
        for packet in container.demux(streams):
            if packet.stream is not video:
                if packet.dts is not None:
                    on_other_packet(packet)
                continue
            for frame in packet.decode():
                yield as_yuv420p(frame)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed ({_reason(exc)})", "undecodable") from None


def as_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name == "yuv420p":
        frame.make_writable()
        return frame
    converted = frame.reformat(format="yuv420p")
    converted.pts, converted.time_base = frame.pts, frame.time_base
    return converted


def planes(frame: av.VideoFrame) -> tuple[npt.NDArray[np.uint8], ...]:
    """Writable Y, U, V views into a yuv420p frame (no copy)."""
    views = []
    for plane in frame.planes:
        flat = np.frombuffer(memoryview(plane), dtype=np.uint8)
        views.append(flat.reshape(plane.height, plane.line_size)[:, : plane.width])
    return tuple(views)


def to_bgr(frame: av.VideoFrame, width: int, height: int) -> npt.NDArray[np.uint8]:
    """A BGR copy of `frame` scaled to width x height (one swscale call)."""
    image = frame.reformat(width=width, height=height, format="bgr24").to_ndarray()
    return np.asarray(image, dtype=np.uint8)


class Transcoder:
    """Decode one clip and re-encode its video frame by frame, copying its audio.

    `frames()` yields each decoded frame; the caller may change it in place, then must
    pass it to `write()`, and end with `finish()` (or `close()` to abandon the output).
    Audio packets are copied as they are demuxed, or re-encoded to AAC where the output
    container cannot hold the source codec. Every FFmpeg failure becomes a VideoError.
    """

    def __init__(self, source: Path, target: Path, settings: EncoderSettings, info: VideoInfo):
        self.source, self.target, self.info = source, target, info
        self._stack = ExitStack()
        try:
            self._input = self._stack.enter_context(_open(source))
            # MP4/MOV: index at the front, so players and browsers start without the whole file
            mp4 = target.suffix.lower() in (".mp4", ".mov")
            options = {"movflags": "+faststart"} if mp4 else {}
            with self._encoding(f"{target.name}: cannot write this container"):
                self._output = self._stack.enter_context(av.open(str(target), "w", options=options))
                self._video_in = self._input.streams.video[0]
                self._video_in.thread_type = "AUTO"
                self._video_out = self._add_video_stream(settings)
                self._audio = [_AudioPass(s, self._output) for s in self._input.streams.audio]
        except BaseException:
            self._stack.close()
            raise
        self.frames_written = 0
        self.media_end = 0.0  # where the last frame or audio packet read so far ends, seconds
        self._first_pts: int | None = None
        self._last_pts: int | None = None

    @contextmanager
    def _encoding(self, what: str) -> Iterator[None]:
        try:
            yield
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoError(f"{what} ({_reason(exc)})", "encode_failed") from None

    def _add_video_stream(self, settings: EncoderSettings) -> av.video.stream.VideoStream:
        stream = cast(
            av.video.stream.VideoStream,
            self._output.add_stream(settings.codec, rate=self.info.frame_rate),
        )
        stream.width, stream.height = self.info.width, self.info.height
        stream.pix_fmt = "yuv420p"
        time_base = self._video_in.time_base or Fraction(1, 90000)
        stream.time_base = stream.codec_context.time_base = time_base
        options: dict[str, object] = {"crf": str(settings.crf), "preset": settings.preset}
        if settings.codec == "libx265":
            options["x265-params"] = "log-level=error"
            stream.codec_tag = "hvc1"  # what Apple players need to open HEVC in MP4
        stream.options = options
        if self.info.sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = self.info.sample_aspect_ratio
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        return stream

    def frames(self) -> Iterator[av.VideoFrame]:
        streams = (self._video_in, *[a.source for a in self._audio])
        by_stream = {a.source.index: a for a in self._audio}

        def audio(packet: av.Packet) -> None:
            if packet.pts is not None and packet.time_base:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                self.media_end = max(self.media_end, end)
            with self._encoding(f"{self.source.name}: audio could not be passed on"):
                by_stream[packet.stream.index].push(packet)

        frame_time = float(1 / self.info.frame_rate) if self.info.frame_rate else 0.0
        for frame in _checked_decode(self._input, streams, self.source, audio):
            if frame.time is not None:
                self.media_end = max(self.media_end, frame.time + frame_time)
            yield frame

    def write(self, frame: av.VideoFrame) -> None:
        frame.pts = self._next_pts(frame.pts)
        frame.time_base = self._video_in.time_base
        with self._encoding(f"{self.source.name}: encoding failed"):
            for packet in self._video_out.encode(frame):
                self._output.mux(packet)
        self.frames_written += 1

    def _next_pts(self, pts: int | None) -> int:
        """Keep source timestamps (variable rate included); invent them only where missing."""
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._first_pts is None:
            self._first_pts = pts
        self._last_pts = pts
        return pts

    @property
    def _step(self) -> int:
        """One frame at the average rate, in stream time units."""
        return max(1, round(1 / (self.info.frame_rate * self.info.time_base)))

    @property
    def duration_written(self) -> float:
        """Seconds from the first written frame to the end of the last one."""
        if self._first_pts is None or self._last_pts is None:
            return 0.0
        span = self._last_pts - self._first_pts + self._step
        return float(span * self.info.time_base)

    def finish(self) -> None:
        with self._encoding(f"{self.source.name}: encoding failed"):
            for packet in self._video_out.encode(None):
                self._output.mux(packet)
            for audio in self._audio:
                audio.flush()
            self._stack.close()

    def close(self) -> None:
        """Close both files, whatever state they are in; the output is then abandoned."""
        # the output is being thrown away: its trailer failing does not matter
        with suppress(av.error.FFmpegError, OSError, ValueError):
            self._stack.close()


class _AudioPass:
    """One audio stream, copied packet by packet, or re-encoded to AAC if it must be."""

    def __init__(self, source, output) -> None:  # type: ignore[no-untyped-def]
        self.source, self._output = source, output
        codec = source.codec_context.name
        self._copy = codec in output.supported_codecs
        if self._copy:
            self.target = output.add_stream_from_template(source)
        else:
            rate = source.codec_context.sample_rate or 48000
            self.target = output.add_stream("aac", rate=rate)
            self.target.layout = source.codec_context.layout.name or "mono"
            self._resampler = av.AudioResampler(format="fltp", layout=self.target.layout, rate=rate)

    def push(self, packet) -> None:  # type: ignore[no-untyped-def]
        if self._copy:
            packet.stream = self.target
            self._output.mux(packet)
            return
        for frame in packet.decode():
            self._encode(frame)

    def _encode(self, frame) -> None:  # type: ignore[no-untyped-def]
        for resampled in self._resampler.resample(frame):
            for out in self.target.encode(resampled):
                self._output.mux(out)

    def flush(self) -> None:
        if self._copy:
            return
        self._encode(None)
        for out in self.target.encode(None):
            self._output.mux(out)


def _count_and_check_tail(path: Path) -> tuple[int, float]:
    """Count the video packets (one per frame in what privmask writes) and the time they
    span, without decoding; then decode from the last keyframe to the end: a clip whose
    end decodes is whole."""
    with _open(path) as container:
        stream = container.streams.video[0]
        packets, last_key, first, end = 0, None, None, None
        for packet in container.demux(stream):
            if not packet.size or packet.pts is None:
                continue
            packets += 1
            first = packet.pts if first is None else min(first, packet.pts)
            finish = packet.pts + (packet.duration or 0)
            end = finish if end is None else max(end, finish)
            if packet.is_keyframe:
                last_key = packet.pts
        if last_key is None or first is None or end is None:
            raise VideoError(f"{path}: output holds no keyframe", "output_undecodable")
        container.seek(last_key, stream=stream, backward=True, any_frame=False)
        tail = sum(1 for _ in _checked_decode(container, (stream,), path, lambda p: None))
        if tail == 0:
            raise VideoError(f"{path}: the end of the output does not decode", "output_undecodable")
        return packets, float((end - first) * (stream.time_base or 0))


def verify_output(
    path: Path, expected_frames: int, expected_duration: float, name: str = ""
) -> VideoInfo:
    """Check a written clip: it opens, its last stretch decodes, and it has the expected
    frame count and duration. Messages call the file `name` (e.g. its final name)."""
    try:
        info = probe(path)
        frames, duration = _count_and_check_tail(path)
    except VideoError as exc:
        raise VideoError(str(exc).replace(str(path), name or str(path)), exc.code) from None
    label = name or str(path)
    if frames != expected_frames:
        raise VideoError(
            f"{label}: output has {frames} frames, expected {expected_frames}", "output_frames"
        )
    tolerance = max(0.1, 2 / float(info.frame_rate or 1))
    if expected_duration and not math.isclose(duration, expected_duration, abs_tol=tolerance):
        raise VideoError(
            f"{label}: output lasts {duration:.2f} s, expected {expected_duration:.2f} s",
            "output_duration",
        )
    return info
