"""A recorder's own files (Hikvision's MPEG program stream, with or without its 40-byte IMKH
header; Dahua's DHAV `.dav`; MP4) as one MP4, by stream copy: the recorder's packets, not
re-encoded, as `cut` does and for the same reason (an original must be the camera's own
pictures).

Several files of one camera, in order, make one clip: each file's packets are placed at
its recording time from the first file's (a stretch between files is a jump in the
timestamps, which players show as a held frame, and the caller reports as a gap). The MP4
says when it was recorded (`creation_time`, the first file's start), which is how intake
reads a clip's recording time. Video is copied, and AAC audio; other audio (G.711, which
recorders mostly have) is left out, as MP4 does not carry it. Written atomically
(`files.staging`, `files.publish`): the whole clip, or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from privmask.adapters import files
from privmask.adapters.video import ffmpeg_reason

_AUDIO = frozenset({"aac"})  # audio codecs MP4 carries that recorders write
_FORMATS = {b"IMKH": "mpeg", b"\x00\x00\x01\xba": "mpeg", b"DHAV": "dhav", b"DAHU": "dhav"}


class RemuxError(Exception):
    """One line: which file could not be read or written, and why."""


@dataclass(frozen=True)
class Part:
    path: Path
    start: datetime  # the recording time of its first frame (aware)


@dataclass(frozen=True)
class Remuxed:
    frames: int  # video packets copied, one per frame
    start: datetime  # the clip's first frame (the first part's start)


def remux(parts: Sequence[Part], target: Path, name: str | None = None) -> Remuxed:
    """`parts` (in time order) as one MP4 at `target`, published without replacing a file.
    `name`: what messages call the clip."""
    if not parts:
        raise ValueError("nothing to remux")
    label = name or target.name
    with files.staging(target) as staged:
        try:
            frames = _write(parts, staged)
        except av.error.FFmpegError as exc:
            raise RemuxError(f"{label}: cannot remux ({ffmpeg_reason(exc)})") from None
        if frames == 0:
            raise RemuxError(f"{label}: the recorder's file holds no video")
        files.publish(staged, target)
    return Remuxed(frames=frames, start=parts[0].start)


def container_format(path: Path) -> str | None:
    """The demuxer for a recorder's file, by its first bytes (None: let FFmpeg probe)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return _FORMATS.get(head)


def _write(parts: Sequence[Part], staged: Path) -> int:
    origin = parts[0].start
    with av.open(str(staged), "w", format="mp4") as output:
        output.metadata["creation_time"] = _stamp(origin)
        streams: dict[str, Any] = {}
        last: dict[str, int] = {}
        frames = 0
        for part in parts:
            offset = Fraction((part.start - origin) // _MICRO, 1_000_000)
            frames += _copy(part.path, output, streams, last, offset)
    return frames


_MICRO = datetime.resolution


def _copy(
    path: Path, output: Any, streams: dict[str, Any], last: dict[str, int], offset: Fraction
) -> int:
    """Copy one file's video (and AAC audio) into `output` from `offset` s on."""
    frames = 0
    with av.open(str(path), "r", format=container_format(path)) as source:
        chosen = _chosen(source, output, streams)
        if not chosen:
            return 0
        video = source.streams.video[0]
        zero = Fraction(video.start_time or 0) * (video.time_base or Fraction(0))
        for packet in source.demux(*chosen.values()):
            if packet.pts is None or not packet.size:
                continue
            kind = packet.stream.type
            target = streams[kind]
            dts = packet.dts if packet.dts is not None else packet.pts
            new_pts = _rescale(packet.pts, packet.time_base, zero, offset, target.time_base)
            new_dts = _rescale(dts, packet.time_base, zero, offset, target.time_base)
            if kind in last and new_dts <= last[kind]:
                continue  # files that overlap: the earlier file's packets stand
            packet.pts, packet.dts, packet.stream = new_pts, new_dts, target
            packet.time_base = target.time_base  # else mux rescales from the file's
            last[kind] = new_dts
            output.mux(packet)
            frames += kind == "video"
    return frames


def _chosen(source: Any, output: Any, streams: dict[str, Any]) -> dict[str, Any]:
    """The file's streams to copy, by kind; the output's streams made from the first file."""
    chosen: dict[str, Any] = {}
    if source.streams.video:
        chosen["video"] = source.streams.video[0]
    audio = [s for s in source.streams.audio if s.codec_context.name in _AUDIO]
    if audio and ("audio" in streams or not streams):
        chosen["audio"] = audio[0]
    for kind, stream in chosen.items():
        if kind not in streams:
            copy = output.add_stream_from_template(stream)
            copy.time_base = stream.time_base
            streams[kind], streams[f"{kind} codec"] = copy, stream.codec_context.name
        elif streams[f"{kind} codec"] != stream.codec_context.name:
            raise RemuxError(
                f"{source.name}: its {kind} is {stream.codec_context.name}, the clip's "
                f"{streams[f'{kind} codec']}"
            )
    return chosen


def _rescale(ts: int, base: Fraction, zero: Fraction, offset: Fraction, out: Fraction) -> int:
    return round((ts * base - zero + offset) / out)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
