"""RTP packets with the ONVIF replay header extension, and the SDP that describes them.

An ONVIF Profile G recorder replays a recording as ordinary RTP, each access unit's first
packet carrying the 0xABAC header extension (ONVIF Streaming Specification, "RTP header
extension"): the unit's UTC wall-clock time as an NTP timestamp, and four flags:

    C clean point (a keyframe)       E end of a contiguous section (the last packet before a gap)
    D discontinuity (a gap before)   T terminal (the last packet of the PLAY range)

Only the extension's time is trusted as recording time: a PLAY response's `Range` may be
relative to the file (GStreamer's) and RTP timestamps have an arbitrary origin.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

NTP_UNIX = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
ONVIF_PROFILE = 0xABAC
NTP_UNKNOWN = 0xFFFF_FFFF_FFFF_FFFF  # "no time" (rtponvifparse reads it so)
_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """A packet or session description that cannot be read."""


@dataclass(frozen=True)
class ReplayStamp:
    """The 0xABAC extension of one packet."""

    ntp: int  # 64-bit NTP timestamp: seconds since 1900 << 32 | fraction
    clean: bool  # C
    end: bool  # E
    discontinuity: bool  # D
    terminal: bool  # T
    cseq: int  # low 8 bits of the PLAY's CSeq (GStreamer always sends 0)

    @property
    def time(self) -> datetime | None:
        """The UTC time, or None where the recorder says it does not know it."""
        return None if self.ntp == NTP_UNKNOWN else ntp_to_datetime(self.ntp)


@dataclass(frozen=True)
class RtpPacket:
    sequence: int
    timestamp: int
    marker: bool
    payload_type: int
    ssrc: int
    payload: bytes
    stamp: ReplayStamp | None  # None: the packet carries no 0xABAC extension


def parse_rtp(data: bytes) -> RtpPacket:
    """One RTP packet (RFC 3550); a header extension other than 0xABAC is skipped."""
    if len(data) < _HEADER.size:
        raise RtpError(f"RTP packet of {len(data)} bytes is too short")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version {b0 >> 6} is not 2")
    offset = _HEADER.size + 4 * (b0 & 0x0F)
    stamp = None
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise RtpError("RTP header extension is cut short")
        profile, words = struct.unpack_from("!HH", data, offset)
        body = data[offset + 4 : offset + 4 + 4 * words]
        offset += 4 + 4 * words
        if len(body) < 4 * words:
            raise RtpError("RTP header extension is cut short")
        if profile == ONVIF_PROFILE and words >= 3:
            stamp = _stamp(body)
    end = len(data)
    if b0 & 0x20:  # padding: the last byte counts it
        end -= data[-1]
    if end < offset:
        raise RtpError("RTP padding is longer than the packet")
    return RtpPacket(
        sequence, timestamp, bool(b1 & 0x80), b1 & 0x7F, ssrc, bytes(data[offset:end]), stamp
    )


def _stamp(body: bytes) -> ReplayStamp:
    ntp, flags, cseq = struct.unpack_from("!QBB", body)
    return ReplayStamp(
        ntp=ntp,
        clean=bool(flags & 0x80),
        end=bool(flags & 0x40),
        discontinuity=bool(flags & 0x20),
        terminal=bool(flags & 0x10),
        cseq=cseq,
    )


def ntp_to_datetime(ntp: int) -> datetime:
    seconds, fraction = ntp >> 32, ntp & 0xFFFF_FFFF
    micros = (fraction * 1_000_000 + (1 << 31)) >> 32  # rounded to the microsecond
    return datetime(1900, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)


def datetime_to_ntp(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1900, 1, 1, tzinfo=UTC)
    micros = delta // timedelta(microseconds=1)
    seconds, rest = divmod(micros, 1_000_000)
    return seconds << 32 | (rest << 32) // 1_000_000


@dataclass(frozen=True)
class MediaTrack:
    """One `m=` section of a session description."""

    kind: str  # video, audio, application
    payload_type: int
    codec: str  # the rtpmap encoding name, upper case: H264, H265
    clock_rate: int
    control: str  # the URL to SETUP (absolute)
    fmtp: dict[str, str] = field(default_factory=dict)

    def parameter_sets(self) -> list[bytes]:
        """The SDP's parameter-set NAL units (H.264 sprop-parameter-sets; H.265
        sprop-vps/-sps/-pps), in decoding order."""
        if self.codec == "H264":
            values = self.fmtp.get("sprop-parameter-sets", "").split(",")
        else:
            values = [self.fmtp.get(k, "") for k in ("sprop-vps", "sprop-sps", "sprop-pps")]
        units = []
        for value in filter(None, (v.strip() for v in values)):
            try:
                units.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise RtpError("the SDP's parameter sets are not base64") from exc
        return units


@dataclass(frozen=True)
class SessionDescription:
    control: str  # the aggregate control URL (PLAY, TEARDOWN)
    tracks: tuple[MediaTrack, ...]


def parse_sdp(text: str, base: str) -> SessionDescription:
    """The media of an SDP (RFC 8866); `base` is the Content-Base (or the request URL)
    that relative `a=control:` URLs resolve against."""
    base = base if base.endswith("/") else base + "/"
    session, *sections = re.split(r"\r?\nm=", "\n" + text.strip())
    session_control = _attribute(session, "control")
    control = _resolve(base, session_control) if session_control else base.rstrip("/")
    return SessionDescription(control, tuple(_track(s, base) for s in sections))


def _track(section: str, base: str) -> MediaTrack:
    fields = section.split(None, 4)
    if len(fields) < 4 or not fields[3].isdigit():
        raise RtpError(f"SDP media line is not understood: m={section.splitlines()[0]}")
    kind, payload_type = fields[0], int(fields[3])
    rtpmap = re.search(rf"^a=rtpmap:{payload_type} ([\w.-]+)/(\d+)", section, re.M)
    codec, clock = (rtpmap.group(1).upper(), int(rtpmap.group(2))) if rtpmap else ("", 90000)
    fmtp_line = re.search(rf"^a=fmtp:{payload_type} (.*)$", section, re.M)
    fmtp = {}
    if fmtp_line:
        for item in fmtp_line.group(1).split(";"):
            key, sep, value = item.strip().partition("=")
            if sep:
                fmtp[key.strip().lower()] = value.strip()
    control = _attribute(section, "control")
    return MediaTrack(kind, payload_type, codec, clock, _resolve(base, control or ""), fmtp)


def _attribute(block: str, name: str) -> str | None:
    match = re.search(rf"^a={name}:(\S+)", block, re.M)
    return match.group(1) if match else None


def _resolve(base: str, control: str) -> str:
    if control in ("", "*"):
        return base.rstrip("/")
    if re.match(r"^[a-z][a-z0-9+.-]*://", control, re.I):
        return control
    return urljoin(base, control)
