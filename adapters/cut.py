"""Cutting a time range out of a clip by stream copy: the packets themselves, not re-encoded.

Why a stream copy: a cut of an original handed to the police must be the original's own
pictures, not a re-encoding of them. The price is that a copy can only start where a
picture can be decoded without the ones before it, a keyframe: the cut starts at the
keyframe at or before the start asked for, and says where (`Cut.start`). It keeps every
frame shown before the end asked for, and of those shown later only the ones a kept frame
is decoded from (a B-frame's forward reference: a frame or two past the end). What is kept
is a prefix, in decode order, of what follows the keyframe, less frames nothing kept
needs, so every packet kept decodes.

Video and audio streams are copied (other streams, such as subtitles or data, are left
out); the cut's timestamps start at zero. The caller stages `target` (a partial file may
be left on error).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from privmask.adapters.video import VideoError, ffmpeg_reason, open_clip


@dataclass(frozen=True)
class Cut:
    start: float  # where the cut starts in the clip, s: the keyframe at or before the asked start
    end: float | None  # the end asked for, s (None: the clip's end)
    frames: int  # video packets copied, one per frame


def cut(
    source: Path, target: Path, start: float | None, end: float | None, name: str | None = None
) -> Cut:
    """Copy the part of `source` from `start` to `end` (seconds from the clip's first
    frame; None: its start, its end) into `target`, whose suffix picks the container.
    `name`: what messages call the output (the final name of a staged `target`)."""
    if start is not None and end is not None and end <= start:
        raise ValueError(f"the cut ends at {end:g} s, before or where it starts ({start:g} s)")
    label = name or target.name
    with open_clip(source) as container:
        if not container.streams.video:
            raise VideoError(f"{source}: contains no video stream", "not_a_video")
        length = _length(container)
        if start is not None and length is not None and start >= length:
            raise VideoError(
                f"the cut starts at {start:g} s, after the clip ends ({length:.1f} s)",
                "invalid_video",
            )
        try:
            return _copy(container, target, start, end, label)
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{label}: cannot cut ({ffmpeg_reason(exc)})", "encode_failed"
            ) from None


def _copy(container: Any, target: Path, start: float | None, end: float | None, label: str) -> Cut:
    video = container.streams.video[0]
    audio = list(container.streams.audio)
    zero = Fraction(video.start_time or 0) * video.time_base  # the first frame's time, s
    if start:
        container.seek(
            round((zero + Fraction(start)) / video.time_base),
            stream=video,
            backward=True,
            any_frame=False,
        )
    with av.open(str(target), "w") as output:
        copies = {s.index: _template(output, s) for s in (video, *audio)}
        origin: Fraction | None = None  # the first kept keyframe, s from the clip's start
        frames, done = 0, set[int]()
        held: list[Any] = []  # video shown after the end: kept only if a later kept frame needs it
        for packet in container.demux(video, *audio):
            if packet.pts is None or not packet.size:
                continue  # flush packets at the end of each stream
            stream = packet.stream.index
            decoded = packet.dts if packet.dts is not None else packet.pts
            when, shows = decoded * packet.time_base - zero, packet.pts * packet.time_base - zero
            if stream == video.index and origin is None:
                if not packet.is_keyframe:
                    continue
                origin = shows
            if origin is None or (stream != video.index and when < origin):
                continue
            if end is not None and when >= end:  # and so is every packet after it
                done.add(stream)
                if len(done) == len(copies):
                    break
                continue
            if end is not None and stream == video.index and shows >= end:
                held.append(packet)  # a B-frame's forward reference, or past the end
                continue
            for kept in [*held, packet] if stream == video.index else [packet]:
                _shift(kept, round((origin + zero) / kept.time_base))
                kept.stream = copies[kept.stream.index]
                output.mux(kept)
                frames += stream == video.index
            held = [] if stream == video.index else held
    if origin is None or frames == 0:
        raise VideoError(f"{label}: no frame of the clip lies in that range", "invalid_video")
    return Cut(start=float(origin), end=end, frames=frames)


def _template(output: Any, stream: Any) -> Any:
    copy = output.add_stream_from_template(stream)
    copy.time_base = stream.time_base
    return copy


def _shift(packet: Any, offset: int) -> None:
    """Move a packet's timestamps back by `offset` (its time base), so the cut starts at 0."""
    packet.pts -= offset
    if packet.dts is not None:
        packet.dts -= offset


def _length(container: Any) -> float | None:
    """The clip's duration in s, where the container says."""
    if container.duration:
        return float(container.duration / av.time_base)
    stream = container.streams.video[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None
