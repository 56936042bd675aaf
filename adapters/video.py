"""Video files through PyAV: errors, probe, decode, frames as planes and pictures.

Frames cross this module as PyAV `VideoFrame`s in yuv420p, writable in place, so that masking
needs no colour conversion and an unchanged frame costs no more than a plain transcode.
Encoding, copying audio and verifying the output are in `transcode`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Generic, Literal, TypeVar, get_args

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
    "resolution_change",  # a frame of another size than the one its masks were made for
    "undecodable_start",  # the first frame does not decode
    "undecodable",  # decoding failed part way through
    "encode_failed",  # the output could not be opened or encoded
    "write_failed",  # the output's disk is full, read-only or failing: not the clip's fault
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


def open_clip(path: Path) -> av.container.InputContainer:
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
        raise VideoError(
            f"{path}: not a readable video container ({ffmpeg_reason(exc)})", code
        ) from None


def ffmpeg_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def probe(path: Path) -> VideoInfo:
    """Read a clip's headers and its first frame; raise VideoError if it is unusable."""
    with open_clip(path) as container:
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
        check_size(path, width, height)
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


def check_size(path: Path, width: int, height: int, where: str = "") -> None:
    """Refuse a picture size no camera makes (a corrupt header, or an attack on memory);
    `where` says which frame, for a clip whose picture size changes part way."""
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise VideoError(
            f"{path}: {where}implausible frame size {width}x{height} "
            f"(supported {MIN_SIDE}..{MAX_SIDE} pixels a side)",
            "resolution",
        )


def _first_frame(container, stream, path: Path) -> av.VideoFrame:  # type: ignore[no-untyped-def]
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"{path}: video does not decode ({ffmpeg_reason(exc)})", "undecodable_start"
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


def decode_frames(path: Path, writable: bool = True) -> Iterator[av.VideoFrame]:
    """Every video frame of a clip as yuv420p, in presentation order; `writable`: frames
    the caller may change in place (a copy where the decoder still refers to one)."""
    with open_clip(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from checked_decode(container, (stream,), path, lambda packet: None, writable)


def checked_decode(container, streams, path: Path, on_other_packet, writable=True):  # type: ignore[no-untyped-def]
    """Demux `container`; decode video packets, hand others to `on_other_packet`."""
    video = streams[0]
    try:
        for packet in container.demux(streams):
            if packet.stream is not video:
                if packet.dts is not None:
                    on_other_packet(packet)
                continue
            for frame in packet.decode():
                yield as_yuv420p(frame, writable)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: decoding failed ({ffmpeg_reason(exc)})", "undecodable") from None


T = TypeVar("T")
_DONE = object()


class ReadAhead(Generic[T]):
    """The items of an iterator, made by a thread of their own up to `depth` ahead of the
    consumer: FFmpeg decodes (without the GIL) while the frames before are worked on.

    Iterate it once; an exception of the iterator is raised to the consumer where its item
    would have come. `close()` stops the thread and closes the iterator (its files) there.
    """

    def __init__(self, items: Iterator[T], depth: int = 4, name: str = "read-ahead") -> None:
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put(_Failure(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                self._queue.get(timeout=0.1)  # unblock a waiting producer
        self._thread.join()


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


def as_yuv420p(frame: av.VideoFrame, writable: bool = True) -> av.VideoFrame:
    if frame.format.name == "yuv420p":
        if writable:
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


def crop_bgr(frame: av.VideoFrame, rect: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    """A BGR copy of the rectangle x1, y1, x2, y2 (even corners) of a yuv420p frame: only
    that part of the picture is converted."""
    import cv2  # only the detection pipeline crops; probing and transcoding need no OpenCV

    x1, y1, x2, y2 = rect
    if x1 % 2 or y1 % 2 or x2 % 2 or y2 % 2 or not (0 <= x1 < x2 and 0 <= y1 < y2):
        raise ValueError(f"crop {rect} needs even corners, left and top before right and bottom")
    luma, u, v = planes(frame)
    width, height = x2 - x1, y2 - y1
    i420 = np.empty((height * 3 // 2, width), dtype=np.uint8)
    i420[:height] = luma[y1:y2, x1:x2]
    chroma = i420[height:].reshape(2, height // 2, width // 2)
    chroma[0] = u[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2]
    chroma[1] = v[y1 // 2 : y2 // 2, x1 // 2 : x2 // 2]
    return np.asarray(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), dtype=np.uint8)


def fit(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """A yuv420p copy of `frame` in a picture of width x height (both even): scaled to fit
    with its proportions kept, centred on black. A clip whose picture size changes part way
    is written at one size, and a part of another shape must not play stretched."""
    scale = min(width / frame.width, height / frame.height)
    inner_w = min(width, max(2, round(frame.width * scale / 2) * 2))
    inner_h = min(height, max(2, round(frame.height * scale / 2) * 2))
    inner = frame.reformat(width=inner_w, height=inner_h, format="yuv420p")
    out = av.VideoFrame(width, height, "yuv420p")
    # even offsets, so that the half-size chroma planes line up with luma
    x0, y0 = (width - inner_w) // 4 * 2, (height - inner_h) // 4 * 2
    for plane, part, black, step in zip(planes(out), planes(inner), (16, 128, 128), (1, 2, 2)):
        top, left = y0 // step, x0 // step
        plane[:] = black
        plane[top : top + part.shape[0], left : left + part.shape[1]] = part
    out.pts, out.time_base = frame.pts, frame.time_base
    return out
