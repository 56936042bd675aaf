"""Technical requirements of an imported clip: container, codec, size, duration, decodable.

A clip that fails is quarantined with a `Rejection` (a stable code for machines, a sentence
for people). Decodability is checked where damage shows: the first and the last second are
decoded, never the whole file, so that validating a day-long export costs seconds. The
source is only ever opened for reading.
"""

from __future__ import annotations

import stat
import struct
from contextlib import suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error

from privmask.adapters.video import VideoError, VideoInfo, probe

# the FFmpeg demuxer names of the containers cameras, NVRs and VMS exports use:
# MP4/MOV ("mov,mp4,..."), Matroska/WebM, AVI, MPEG-TS, MPEG-PS (also Hikvision IMKH), Dahua
DEFAULT_CONTAINERS = frozenset({"mov", "mp4", "matroska", "avi", "mpegts", "mpeg", "dhav"})
CHECK_SECONDS = 1.0  # how much of the start and of the end is decoded

# Every code a Rejection can carry.
CODES = (
    "unreadable",  # missing, a folder, no permission
    "empty",
    "too_large",
    "not_a_video",
    "truncated",
    "unsupported_container",
    "unsupported_codec",
    "resolution",
    "too_long",
    "too_short",
    "undecodable_start",
    "undecodable_end",
)

# FFmpeg demuxers that accept arbitrary bytes (text-mode art): a match means "no video"
_TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf", "ansi"})

# Vendor formats FFmpeg cannot read, by their first bytes, to say what a rejected file is.
_VENDOR_MAGIC = {
    b"PAVS": "a VMax/PAVS DVR backup (.psf)",
    b"IMKH": "a Hikvision file whose stream could not be read",
    b"DHAV": "a Dahua recording whose stream could not be read",
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 64 << 30
    max_seconds: float = 24 * 3600
    min_seconds: float = 0.0
    max_width: int = 7680  # 8K UHD; a portrait (corridor mode) clip may be this tall instead
    max_height: int = 4320
    codecs: frozenset[str] = frozenset({"h264", "hevc", "mjpeg"})
    containers: frozenset[str] = field(default=DEFAULT_CONTAINERS)


@dataclass(frozen=True)
class Rejection:
    code: str  # one of CODES
    reason: str  # one sentence, naming the file


class ValidationError(Exception):
    def __init__(self, rejection: Rejection):
        super().__init__(f"{rejection.code}: {rejection.reason}")
        self.rejection = rejection


def _reject(code: str, reason: str) -> ValidationError:
    return ValidationError(Rejection(code, reason))


def validate(path: Path, limits: Limits = Limits()) -> VideoInfo:
    """Probe `path` and check it against `limits`; raise ValidationError with the first
    requirement it fails, cheapest checks first."""
    name = path.name
    size = _file_size(path)
    if size == 0:
        raise _reject("empty", f"{name}: empty file (0 bytes)")
    if size > limits.max_bytes:
        raise _reject("too_large", f"{name}: {size} bytes, over the limit of {limits.max_bytes}")
    _check_mp4_boxes(path, size)
    _check_container(path, limits)
    try:
        info = probe(path)
    except VideoError as exc:
        raise _from_video_error(path, exc) from None
    _check_limits(info, limits)
    _check_decodable(path, info)
    return info


def _file_size(path: Path) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _reject("unreadable", f"{path.name}: no such file") from None
    except OSError as exc:
        raise _reject("unreadable", f"{path.name}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _reject("unreadable", f"{path.name}: not a regular file")
    return info.st_size


def _from_video_error(path: Path, exc: VideoError) -> ValidationError:
    """probe()'s error as a rejection, by its code: probe()'s codes are rejection codes;
    "not_a_video", and any code validation does not know, is not a video."""
    message = str(exc).replace(str(path), path.name)
    if exc.code in CODES and exc.code != "not_a_video":
        return _reject(exc.code, message)
    return _not_a_video(path, message.removeprefix(f"{path.name}: "))


def _check_container(path: Path, limits: Limits) -> None:
    """Which demuxer FFmpeg picks, before any stream is looked at: a container outside the
    limits is refused as such, not for whatever codec FFmpeg's guess happened to yield."""
    try:
        with av.open(str(path), "r") as container:
            fmt = container.format
            names, long_name = fmt.name, fmt.long_name
    except av.error.FFmpegError as exc:
        raise _not_a_video(path, f"not a readable video container ({_reason(exc)})") from None
    if set(names.split(",")) & _TEXT_DEMUXERS:
        # FFmpeg renders any bytes as text art when nothing else matches
        raise _not_a_video(path, f"no video container found (FFmpeg guessed {long_name})")
    if not set(names.split(",")) & limits.containers:
        allowed = ", ".join(sorted(limits.containers))
        raise _reject(
            "unsupported_container",
            f"{path.name}: container {names} ({long_name}) is not accepted (accepted: {allowed})",
        )


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _not_a_video(path: Path, what: str) -> ValidationError:
    message = f"{path.name}: {what}"
    vendor = _vendor_format(path)
    if vendor:
        message += f"; it looks like {vendor}: export the clip from the recorder as MP4"
    return _reject("not_a_video", message)


def _vendor_format(path: Path) -> str:
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError:
        return ""
    return _VENDOR_MAGIC.get(magic, "")


def _check_mp4_boxes(path: Path, size: int) -> None:
    """An MP4/MOV whose top-level boxes run past the end of the file was cut short (a copy
    interrupted, a recorder that lost power): say so, rather than FFmpeg's "invalid data"."""
    try:
        with path.open("rb") as file:
            head = file.read(8)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return
            offset = 0
            while offset < size:
                file.seek(offset)
                header = file.read(16)
                if len(header) < 8:
                    raise _reject("truncated", f"{path.name}: MP4 file is cut short")
                box_size, kind = struct.unpack(">I4s", header[:8])
                if box_size == 1 and len(header) == 16:
                    box_size = struct.unpack(">Q", header[8:16])[0]
                elif box_size == 0:
                    return  # this box runs to the end of the file, by definition
                if box_size < 8:
                    return  # not a box structure we understand; let FFmpeg judge
                if offset + box_size > size:
                    box = kind.decode("latin-1")
                    raise _reject(
                        "truncated",
                        f"{path.name}: MP4 file is cut short ('{box}' box needs "
                        f"{offset + box_size} bytes, the file has {size})",
                    )
                offset += box_size
    except OSError as exc:
        raise _reject("unreadable", f"{path.name}: cannot be read ({exc.strerror})") from None


def _check_limits(info: VideoInfo, limits: Limits) -> None:
    name = info.path.name
    if info.codec not in limits.codecs:
        allowed = ", ".join(sorted(limits.codecs))
        raise _reject(
            "unsupported_codec", f"{name}: video codec {info.codec} is not accepted ({allowed})"
        )
    width, height = info.width, info.height
    fits = (width <= limits.max_width and height <= limits.max_height) or (
        height <= limits.max_width and width <= limits.max_height
    )
    if not fits:
        raise _reject(
            "resolution",
            f"{name}: {width}x{height} is larger than {limits.max_width}x{limits.max_height}",
        )
    if info.duration_s > limits.max_seconds:
        raise _reject(
            "too_long", f"{name}: lasts {info.duration_s:.1f} s, over {limits.max_seconds:g} s"
        )
    if info.duration_s < limits.min_seconds:
        raise _reject(
            "too_short", f"{name}: lasts {info.duration_s:.1f} s, under {limits.min_seconds:g} s"
        )


def _check_decodable(path: Path, info: VideoInfo) -> None:
    """Decode the first and the last CHECK_SECONDS; the end must reach (nearly) where the
    container says the clip ends."""
    try:
        with av.open(str(path), "r") as container:
            start = _decode_start(container, container.streams.video[0], path)
        _decode_end(path, info, start)
    except av.error.FFmpegError as exc:
        # opening worked in probe(); a failure now is in the data
        raise _reject("undecodable_end", f"{path.name}: reading failed ({_reason(exc)})") from None


def _frame_seconds(frame: av.VideoFrame) -> float | None:
    return float(frame.time) if frame.time is not None else None


def _decode_start(container, stream, path: Path) -> float:  # type: ignore[no-untyped-def]
    """Decode up to CHECK_SECONDS from the start; return the first frame's time."""
    first: float | None = None
    frames = 0
    try:
        for frame in container.decode(stream):
            frames += 1
            moment = _frame_seconds(frame)
            if first is None:
                first = moment if moment is not None else 0.0
            if moment is not None and moment - first >= CHECK_SECONDS:
                break
    except av.error.FFmpegError as exc:
        raise _reject(
            "undecodable_start", f"{path.name}: the start does not decode ({_reason(exc)})"
        ) from None
    if frames == 0 or first is None:
        raise _reject("undecodable_start", f"{path.name}: the start holds no decodable frame")
    return first


def _decode_end(path: Path, info: VideoInfo, start: float) -> None:
    """Decode from CHECK_SECONDS before the declared end to the end of the file.

    Seeking is exact only in indexed containers (MP4, Matroska, AVI); in MPEG-TS/PS it
    lands near a byte offset, possibly after the last keyframe, and then nothing decodes.
    So when nothing decodes, the window is widened (x4) until it covers the whole clip.
    A decoding error is not retried: that is damage.
    """
    if info.duration_s <= 0:
        return  # no declared end to seek to; probe() already decoded the first frame
    end = start + info.duration_s
    window = CHECK_SECONDS
    while True:
        whole = window >= info.duration_s
        frames, last = _decode_tail(path, None if whole else end - window)
        if frames or whole:
            break
        window *= 4
    if frames == 0:
        raise _reject("undecodable_end", f"{path.name}: the end holds no decodable frame")
    # the last frame starts one frame before the end; allow two frames and the check window
    frame_time = float(1 / info.frame_rate) if info.frame_rate else 0.0
    if last is not None and last + 2 * frame_time + CHECK_SECONDS < end:
        raise _reject(
            "undecodable_end",
            f"{path.name}: decodes only to {last - start:.1f} s of {info.duration_s:.1f} s",
        )


def _decode_tail(path: Path, seconds: float | None) -> tuple[int, float | None]:
    """Open afresh (a decoder that reached the end cannot be rewound), seek to `seconds`
    (None: from the start), decode to the end; return (frames, time of the latest)."""
    last: float | None = None
    frames = 0
    with av.open(str(path), "r") as container:
        stream = container.streams.video[0]
        if seconds is not None:
            time_base = stream.time_base or Fraction(1, av.time_base)
            with suppress(av.error.FFmpegError):  # not seekable: read from the start
                container.seek(int(seconds / time_base), stream=stream, backward=True)
        try:
            for frame in container.decode(stream):
                frames += 1
                moment = _frame_seconds(frame)
                if moment is not None:
                    last = moment if last is None else max(last, moment)
        except av.error.FFmpegError as exc:
            raise _reject(
                "undecodable_end", f"{path.name}: the end does not decode ({_reason(exc)})"
            ) from None
    return frames, last
