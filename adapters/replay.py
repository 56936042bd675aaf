"""ONVIF Profile G replay: a stretch of a recorder's recording, fetched into an MP4.

    replay(uri, user, password, start, end, target) -> Replayed

`uri` comes from the recorder's GetReplayUri. The client asks for the stretch with
`Range: clock=START-END` (UTC), `Rate-Control: no` (as fast as the recorder can send) and
`Require: onvif-replay`, over RTSP/TCP (`rtsp_session.py`), and takes every unit's time
from the 0xABAC extension (`rtp.py`), never from the PLAY answer's Range. It reads until the
terminal (T) bit or the end time, and writes the video stream-copied (`replay_clip.py`)
through a staging name that is published only when the whole stretch arrived: the file is
whole or absent.

The clip starts at the last keyframe at or before `start` (the frames before it cannot be
decoded without it), so `first` may be a little before `start`; it ends before `end`.
MP4's creation_time keeps whole seconds, so the exact first and last times are returned.
A discontinuity (D) bit, a unit without a time, a jump in time or lost packets (the units
up to the next keyframe are dropped) is returned as a gap: from the last frame before it
to the first frame after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from privmask.adapters import files
from privmask.adapters.depacketize import AccessUnit, DepacketizeError, depacketizer
from privmask.adapters.replay_clip import CODECS, ClipError, ClipWriter
from privmask.adapters.rtp import MediaTrack, RtpError, parse_rtp, parse_sdp
from privmask.adapters.rtsp_session import RtspSession, RtspSessionError

REPLAY = "onvif-replay"
MAX_FRAME_INTERVAL = timedelta(seconds=2)  # a longer step between frames is a gap
MAX_PREROLL = 256 * 1024 * 1024  # bytes held from a keyframe before the start
INVALID_RANGE = 457


class ReplayError(Exception):
    """One line without credentials; `code`: unreachable, refused, auth, protocol, no_data
    (the recorder holds nothing in the stretch)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Replayed:
    first: datetime | None  # the first frame's time (UTC), exact
    last: datetime | None  # the last frame's time
    frames: int
    gaps: tuple[tuple[datetime, datetime], ...]


def replay(
    uri: str,
    username: str | None,
    password: str | None,
    start: datetime,
    end: datetime,
    target: Path,
    *,
    timeout: float = 10.0,
) -> Replayed:
    """Fetch [start, end) of the recording at `uri` into the MP4 `target`, or raise
    ReplayError and leave nothing."""
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise ValueError("replay needs aware times with start < end")
    try:
        session = RtspSession(uri, username, password, timeout)
    except RtspSessionError as exc:
        raise ReplayError(str(exc), exc.code) from None
    control = None
    try:
        setup = _set_up(session)
        control = setup.control
        _play(session, control, start, end)
        with files.staging(target) as staged:
            replayed = _receive(session, setup, staged, start, end)
            files.publish(staged, target, overwrite=True)
        return replayed
    except RtspSessionError as exc:
        raise ReplayError(str(exc), exc.code) from None
    except (RtpError, DepacketizeError, ClipError) as exc:
        raise ReplayError(f"{session.shown}: {exc}", "protocol") from None
    finally:
        session.close(control)


@dataclass(frozen=True)
class _Setup:
    track: MediaTrack
    control: str  # the aggregate control URL (PLAY, TEARDOWN)
    channel: int  # the interleaved channel of its RTP


def _set_up(session: RtspSession) -> _Setup:
    """DESCRIBE, then SETUP the first H.264/H.265 video track (`Require` on SETUP and PLAY,
    as the ONVIF streaming specification's examples send it)."""
    answer = session.request("DESCRIBE", session.url, {"Accept": "application/sdp"})
    base = answer.header("content-base") or answer.header("content-location") or session.url
    description = parse_sdp(answer.body.decode("utf-8", "replace"), base)
    videos = [t for t in description.tracks if t.kind == "video"]
    track = next((t for t in videos if t.codec in CODECS), None)
    if track is None:
        codecs = ", ".join(t.codec or "unknown" for t in videos) or "no video"
        raise ReplayError(f"{session.shown}: {codecs} (H.264 or H.265 needed)", "protocol")
    transport = "RTP/AVP/TCP;unicast;interleaved=0-1"
    setup = session.request("SETUP", track.control, {"Transport": transport, "Require": REPLAY})
    # the server may choose other channels than those asked for
    chosen = re.search(r"interleaved=(\d+)", setup.header("transport") or "")
    return _Setup(track, description.control, int(chosen.group(1)) if chosen else 0)


def _play(session: RtspSession, control: str, start: datetime, end: datetime) -> None:
    headers = {
        "Range": f"clock={_clock(start)}-{_clock(end)}",
        "Rate-Control": "no",
        "Require": REPLAY,
    }
    try:
        session.request("PLAY", control, headers)
    except RtspSessionError as exc:
        if exc.status == INVALID_RANGE:
            raise ReplayError(f"{session.shown}: no recording in the stretch", "no_data") from None
        raise


def _receive(
    session: RtspSession, setup: _Setup, staged: Path, start: datetime, end: datetime
) -> Replayed:
    track = setup.track
    units = depacketizer(track.codec, track.fmtp, track.parameter_sets())
    clip = _Clip(ClipWriter(staged, track.codec), start, end)
    try:
        while not clip.done:
            if session.keep_alive_due():
                session.keep_alive(setup.control)
            channel, data = session.frame()
            if channel != setup.channel:
                continue  # RTCP
            packet = parse_rtp(data)
            if packet.payload_type != track.payload_type:
                continue
            for unit in units.push(packet):
                clip.take(unit)
                if clip.done:
                    break
        if not clip.frames:
            raise ReplayError(f"{session.shown}: no recording in the stretch", "no_data")
        clip.writer.close()
    except BaseException:
        clip.writer.abort()
        raise
    return clip.result()


@dataclass
class _Clip:
    """Which units go into the clip, and the gaps between them."""

    writer: ClipWriter
    start: datetime
    end: datetime
    done: bool = False
    frames: int = 0
    first: datetime | None = None
    last: datetime | None = None
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    _preroll: list[tuple[AccessUnit, int]] = field(default_factory=list)
    _preroll_bytes: int = 0
    _need_key: bool = False  # after a loss: nothing until the next keyframe
    _hole: bool = False  # a gap is open: closed by the next frame kept
    _previous: datetime | None = None  # the last unit's time, kept or not

    def take(self, unit: AccessUnit) -> None:
        self.done = unit.terminal
        moment = unit.stamp.time if unit.stamp is not None else None
        if moment is None or unit.damaged:
            self._break()
            return
        if moment >= self.end:
            self.done = True
            return
        if unit.stamp is not None and unit.stamp.discontinuity and self.frames:
            self._hole = True
        if self._previous is not None and moment - self._previous > MAX_FRAME_INTERVAL:
            self._hole = True
        self._previous = moment
        if self._need_key and not unit.keyframe:
            return
        self._need_key = False
        assert unit.stamp is not None
        if moment < self.start and not self.frames:  # later, a B-frame may go back in time
            self._hold(unit, unit.stamp.ntp)
            return
        for held, ntp in self._preroll:
            self._write(held, ntp)
        self._preroll, self._preroll_bytes = [], 0
        if self.frames or unit.keyframe:
            self._write(unit, unit.stamp.ntp)

    def _hold(self, unit: AccessUnit, ntp: int) -> None:
        """Before `start`: only the last keyframe and what follows it are kept."""
        if unit.keyframe:
            self._preroll, self._preroll_bytes = [], 0
        if unit.keyframe or self._preroll:
            self._preroll.append((unit, ntp))
            self._preroll_bytes += len(unit.data)
        if self._preroll_bytes > MAX_PREROLL:
            raise ClipError("the recorder sends too much before the start asked for")

    def _break(self) -> None:
        self._need_key = True
        self._preroll, self._preroll_bytes = [], 0
        if self.frames:
            self._hole = True

    def _write(self, unit: AccessUnit, ntp: int) -> None:
        assert unit.stamp is not None and unit.stamp.time is not None
        moment = unit.stamp.time
        if self._hole and self.last is not None:
            self.gaps.append((self.last, moment))
        self._hole = False
        self.writer.add(unit.data, ntp, unit.keyframe)
        self.frames += 1
        self.first = self.first or moment
        self.last = moment if self.last is None else max(self.last, moment)

    def result(self) -> Replayed:
        return Replayed(self.first, self.last, self.frames, tuple(self.gaps))


def _clock(moment: datetime) -> str:
    """An ONVIF clock time: UTC, ISO 8601 basic, milliseconds."""
    text = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
    return text[:-3] + "Z"
