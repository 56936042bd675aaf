"""Technical requirements of an imported clip: container, codec, size, duration, decodable.

A clip that fails is quarantined with a `Rejection` (a stable code for machines, a sentence
for people). Decodability is checked where damage shows: the first and the last second are
decoded, never the whole file, so that validating a day-long export costs seconds. The
source is only ever opened for reading, and only a regular file is opened, never through a
link (`adapters.untrusted`): with an open descriptor, that very file is what is read.
"""

from __future__ import annotations

import os
import struct
from contextlib import suppress
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import av.error

from privmask.adapters.untrusted import NotRegularFile, descriptor_path, open_regular
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
    "undecodable_middle",  # decoding from a keyframe before the end failed before the end
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


def validate(path: Path, limits: Limits = Limits(), fd: int | None = None) -> VideoInfo:
    """Probe `path` and check it against `limits`; raise ValidationError with the first
    requirement it fails, cheapest checks first.

    `fd`: an open descriptor of the file to read (the caller checked it is the file it
    means); reasons still name `path`. Without it, `path` is opened here, never through a
    link, and a link, a folder or a named pipe is "unreadable".
    """
    if fd is not None:
        return _validate_open(path, fd, limits)
    try:
        own = open_regular(path)
    except NotRegularFile as exc:
        raise _reject("unreadable", f"{path.name}: {exc.strerror}") from None
    except FileNotFoundError:
        raise _reject("unreadable", f"{path.name}: no such file") from None
    except OSError as exc:
        raise _reject("unreadable", f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        return _validate_open(path, own, limits)
    finally:
        os.close(own)


def _validate_open(path: Path, fd: int, limits: Limits) -> VideoInfo:
    name = path.name
    size = os.fstat(fd).st_size
    check_size(name, size, limits)
    _check_mp4_boxes(fd, name, size)
    source = _Source(path, descriptor_path(fd), fd)
    _check_container(source, limits)
    try:
        info = probe(source.opened)
    except VideoError as exc:
        raise _from_video_error(source, exc) from None
    info = replace(info, path=path)  # the name people know, not the descriptor's
    _check_limits(info, limits)
    _check_decodable(source, info)
    return info


def check_size(name: str, size: int, limits: Limits) -> None:
    """The checks that need only the size (from fstat): run before any byte is read, so that
    an oversize file is never hashed or copied."""
    if size == 0:
        raise _reject("empty", f"{name}: empty file (0 bytes)")
    if size > limits.max_bytes:
        raise _reject("too_large", f"{name}: {size} bytes, over the limit of {limits.max_bytes}")


@dataclass(frozen=True)
class _Source:
    """The clip being validated: the name to report, the name to open, its descriptor."""

    path: Path
    opened: Path
    fd: int

    @property
    def name(self) -> str:
        return self.path.name


def _from_video_error(source: _Source, exc: VideoError) -> ValidationError:
    """probe()'s error as a rejection, by its code: probe()'s codes are rejection codes;
    "not_a_video", and any code validation does not know, is not a video."""
    message = str(exc).replace(str(source.opened), source.name)
    if exc.code in CODES and exc.code != "not_a_video":
        return _reject(exc.code, message)
    return _not_a_video(source, message.removeprefix(f"{source.name}: "))


def _check_container(source: _Source, limits: Limits) -> None:
    """Which demuxer FFmpeg picks, before any stream is looked at: a container outside the
    limits is refused as such, not for whatever codec FFmpeg's guess happened to yield."""
    try:
        with av.open(str(source.opened), "r") as container:
            fmt = container.format
            names, long_name = fmt.name, fmt.long_name
    except av.error.FFmpegError as exc:
        raise _not_a_video(source, f"not a readable video container ({_reason(exc)})") from None
    if set(names.split(",")) & _TEXT_DEMUXERS:
        # FFmpeg renders any bytes as text art when nothing else matches
        raise _not_a_video(source, f"no video container found (FFmpeg guessed {long_name})")
    if not set(names.split(",")) & limits.containers:
        allowed = ", ".join(sorted(limits.containers))
        raise _reject(
            "unsupported_container",
            f"{source.name}: container {names} ({long_name}) is not accepted (accepted: {allowed})",
        )


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _not_a_video(source: _Source, what: str) -> ValidationError:
    message = f"{source.name}: {what}"
    vendor = _VENDOR_MAGIC.get(_read_at(source.fd, 0, 4), "")
    if vendor:
        message += f"; it looks like {vendor}: export the clip from the recorder as MP4"
    return _reject("not_a_video", message)


def _read_at(fd: int, offset: int, count: int) -> bytes:
    try:
        return os.pread(fd, count, offset)
    except OSError:
        return b""


def _check_mp4_boxes(fd: int, name: str, size: int) -> None:
    """An MP4/MOV whose top-level boxes run past the end of the file was cut short (a copy
    interrupted, a recorder that lost power): say so, rather than FFmpeg's "invalid data"."""
    try:
        head = os.pread(fd, 8, 0)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return
        offset = 0
        while offset < size:
            header = os.pread(fd, 16, offset)
            if len(header) < 8:
                raise _reject("truncated", f"{name}: MP4 file is cut short")
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
                    f"{name}: MP4 file is cut short ('{box}' box needs "
                    f"{offset + box_size} bytes, the file has {size})",
                )
            offset += box_size
    except OSError as exc:
        raise _reject("unreadable", f"{name}: cannot be read ({exc.strerror})") from None


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


def _check_decodable(source: _Source, info: VideoInfo) -> None:
    """Decode the first and the last CHECK_SECONDS; the end must reach (nearly) where the
    container says the clip ends."""
    try:
        with av.open(str(source.opened), "r") as container:
            start = _decode_start(container, container.streams.video[0], source.name)
        _decode_end(source, info, start)
    except av.error.FFmpegError as exc:
        # opening worked in probe(); a failure now is in the data
        raise _reject(
            "undecodable_end", f"{source.name}: reading failed ({_reason(exc)})"
        ) from None


def _frame_seconds(frame: av.VideoFrame) -> float | None:
    return float(frame.time) if frame.time is not None else None


def _decode_start(container, stream, name: str) -> float:  # type: ignore[no-untyped-def]
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
            "undecodable_start", f"{name}: the start does not decode ({_reason(exc)})"
        ) from None
    if frames == 0 or first is None:
        raise _reject("undecodable_start", f"{name}: the start holds no decodable frame")
    return first


def _decode_end(source: _Source, info: VideoInfo, start: float) -> None:
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
        tail = _decode_tail(source.opened, None if whole else end - window)
        if tail.error is not None:
            raise _damage(source.name, tail, start, info.duration_s)
        if tail.frames or whole:
            break
        window *= 4
    if tail.frames == 0:
        raise _reject("undecodable_end", f"{source.name}: the end holds no decodable frame")
    # the last frame starts one frame before the end; allow two frames and the check window
    frame_time = float(1 / info.frame_rate) if info.frame_rate else 0.0
    last = tail.last
    if last is not None and last + 2 * frame_time + CHECK_SECONDS < end:
        raise _reject(
            "undecodable_end",
            f"{source.name}: decodes only to {last - start:.1f} s of {info.duration_s:.1f} s",
        )


@dataclass(frozen=True)
class _Tail:
    frames: int  # decoded
    last: float | None  # time of the latest decoded frame
    error: str | None = None  # the first decoding error
    damaged: tuple[float | None, float | None] = (None, None)  # first and last bad packet


def _damage(name: str, tail: _Tail, start: float, duration: float) -> ValidationError:
    """Decoding errors on the way to the end. Seeking lands on the keyframe before the end
    window, which in a clip with few keyframes is far earlier, so where reading began says
    nothing: damage that stops before the end window is in the middle, damage that goes on
    into it is at the end."""
    first, last = tail.damaged
    if last is not None and last - start + CHECK_SECONDS < duration:
        begins = first if first is not None else last
        return _reject(
            "undecodable_middle",
            f"{name}: does not decode from {begins - start:.1f} s of {duration:.1f} s "
            f"({tail.error})",
        )
    return _reject("undecodable_end", f"{name}: the end does not decode ({tail.error})")


def _decode_tail(path: Path, seconds: float | None) -> _Tail:
    """Open afresh (a decoder that reached the end cannot be rewound), seek to `seconds`
    (None: from the start), decode to the end, going on past packets that fail."""
    last: float | None = None
    frames = 0
    error: str | None = None
    first_bad: float | None = None
    last_bad: float | None = None
    with av.open(str(path), "r") as container:
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, av.time_base)
        if seconds is not None:
            with suppress(av.error.FFmpegError):  # not seekable: read from the start
                container.seek(int(seconds / time_base), stream=stream, backward=True)
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                error = error or _reason(exc)
                if packet.pts is not None:
                    last_bad = float(packet.pts * time_base)
                    first_bad = last_bad if first_bad is None else first_bad
                continue
            for frame in decoded:
                frames += 1
                shown = _frame_seconds(frame)
                if shown is not None:
                    last = shown if last is None else max(last, shown)
    return _Tail(frames, last, error, (first_bad, last_bad))
