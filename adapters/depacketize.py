"""RTP payloads back into H.264 / H.265 access units (Annex B byte streams).

H.264 follows RFC 6184 (single NAL units, STAP-A, FU-A), H.265 RFC 7798 (single NAL
units, aggregation packets, fragmentation units; DONL is refused). An access unit ends at
the RTP marker bit, or where the RTP timestamp changes (a lost marker). A gap in sequence
numbers marks the unit it falls in as damaged: the caller drops it and what depends on it,
up to the next keyframe. The SDP's parameter sets are put before every keyframe that does
not carry its own, so a recording whose camera sends them out of band still decodes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from privmask.adapters.rtp import ReplayStamp, RtpPacket

START_CODE = b"\x00\x00\x00\x01"
MAX_UNIT = 32 * 1024 * 1024  # bytes of one access unit: far above any camera's keyframe


class DepacketizeError(ValueError):
    """A payload this depacketiser cannot take (an unsupported codec or packet mode)."""


@dataclass(frozen=True)
class AccessUnit:
    """One picture's NAL units as an Annex B byte stream."""

    data: bytes
    rtp_time: int
    stamp: ReplayStamp | None  # the 0xABAC extension of its first packet that had one
    keyframe: bool  # holds an IDR (H.264) or IRAP (H.265) picture
    damaged: bool  # packets were lost inside it or just before it
    end: bool  # E or T was set on one of its packets
    terminal: bool  # T was set on one of its packets


class Depacketizer:
    """Collects NAL units until an access unit is complete; `push` returns it then."""

    header_size = 1

    def __init__(self, parameter_sets: Sequence[bytes] = ()) -> None:
        self._parameter_sets = list(parameter_sets)
        self._units: list[bytes] = []
        self._fragment: bytearray | None = None
        self._last_sequence: int | None = None
        self._rtp_time: int | None = None
        self._stamp: ReplayStamp | None = None
        self._damaged = False
        self._end = self._terminal = False
        self._size = 0

    def push(self, packet: RtpPacket) -> list[AccessUnit]:
        """Take one packet; the access units it completes (none, one, or two when its RTP
        time differs from the unit being collected: that one lost its marker packet, so it
        is closed first, damaged)."""
        done = []
        if self._rtp_time is not None and packet.timestamp != self._rtp_time:
            self._damaged = True
            done.append(self._finish())
        self._check_sequence(packet.sequence)
        if self._rtp_time is None:
            self._rtp_time = packet.timestamp
        if packet.stamp is not None:
            self._stamp = self._stamp or packet.stamp
            self._end |= packet.stamp.end or packet.stamp.terminal
            self._terminal |= packet.stamp.terminal
        if packet.payload:
            self._size += len(packet.payload)
            if self._size > MAX_UNIT:
                raise DepacketizeError(f"an access unit is larger than {MAX_UNIT >> 20} MiB")
            self._take(packet.payload)
        if packet.marker:
            done.append(self._finish())
        return done

    def _check_sequence(self, sequence: int) -> None:
        if self._last_sequence is not None and sequence != (self._last_sequence + 1) & 0xFFFF:
            self._damaged = True
            self._fragment = None
        self._last_sequence = sequence

    def _take(self, payload: bytes) -> None:
        raise NotImplementedError

    def _unit_type(self, unit: bytes) -> int:
        raise NotImplementedError

    def _is_keyframe(self, types: set[int]) -> bool:
        raise NotImplementedError

    def _is_parameter_set(self, unit_type: int) -> bool:
        raise NotImplementedError

    def _aggregate(self, payload: bytes) -> None:
        offset = self.header_size
        while offset + 2 <= len(payload):
            (size,) = struct.unpack_from("!H", payload, offset)
            unit = payload[offset + 2 : offset + 2 + size]
            if size == 0 or len(unit) < size:
                self._damaged = True
                return
            self._units.append(unit)
            offset += 2 + size

    def _fragment_part(self, start: bool, end: bool, header: bytes, body: bytes) -> None:
        if start:
            self._fragment = bytearray(header) + body
        elif self._fragment is not None:
            self._fragment += body
        else:
            self._damaged = True  # a middle or end without its start
        if end and self._fragment is not None:
            self._units.append(bytes(self._fragment))
            self._fragment = None

    def _finish(self) -> AccessUnit:
        units = [u for u in self._units if u]
        types = {self._unit_type(u) for u in units}
        keyframe = self._is_keyframe(types)
        if keyframe and not any(self._is_parameter_set(t) for t in types):
            units = self._parameter_sets + units
        unit = AccessUnit(
            data=b"".join(START_CODE + u for u in units),
            rtp_time=self._rtp_time or 0,
            stamp=self._stamp,
            keyframe=keyframe,
            damaged=self._damaged or self._fragment is not None or not units,
            end=self._end,
            terminal=self._terminal,
        )
        self._units, self._fragment, self._rtp_time, self._stamp = [], None, None, None
        self._damaged = self._end = self._terminal = False
        self._size = 0
        return unit


class H264Depacketizer(Depacketizer):
    """RFC 6184, packetization modes 0 and 1."""

    def _take(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._units.append(payload)
        elif kind == 24:  # STAP-A
            self._aggregate(payload)
        elif kind == 28 and len(payload) > 2:  # FU-A
            header = bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            self._fragment_part(bool(payload[1] & 0x80), bool(payload[1] & 0x40), header,
                                payload[2:])  # fmt: skip
        else:  # STAP-B, MTAP, FU-B: interleaved mode only, which is not asked for
            raise DepacketizeError(f"H.264 RTP packet type {kind} is not supported")

    def _unit_type(self, unit: bytes) -> int:
        return unit[0] & 0x1F

    def _is_keyframe(self, types: set[int]) -> bool:
        return 5 in types

    def _is_parameter_set(self, unit_type: int) -> bool:
        return unit_type == 7


class H265Depacketizer(Depacketizer):
    """RFC 7798 without DONL (sprop-max-don-diff 0, as cameras send it)."""

    header_size = 2

    def _take(self, payload: bytes) -> None:
        if len(payload) < 2:
            self._damaged = True
            return
        kind = (payload[0] >> 1) & 0x3F
        if kind < 48:
            self._units.append(payload)
        elif kind == 48:  # aggregation packet
            self._aggregate(payload)
        elif kind == 49 and len(payload) > 3:  # fragmentation unit
            fu = payload[2]
            header = bytes([(payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1]])
            self._fragment_part(bool(fu & 0x80), bool(fu & 0x40), header, payload[3:])
        elif kind == 50:  # PACI: payload content information, nothing to decode
            return
        else:
            raise DepacketizeError(f"H.265 RTP packet type {kind} is not supported")

    def _unit_type(self, unit: bytes) -> int:
        return (unit[0] >> 1) & 0x3F

    def _is_keyframe(self, types: set[int]) -> bool:
        return any(16 <= t <= 23 for t in types)

    def _is_parameter_set(self, unit_type: int) -> bool:
        return unit_type in (32, 33)


def depacketizer(codec: str, fmtp: dict[str, str], parameter_sets: Sequence[bytes]) -> Depacketizer:
    """The depacketiser for an SDP track's codec (H264, H265)."""
    if codec == "H264":
        if fmtp.get("packetization-mode", "0") not in ("0", "1"):
            raise DepacketizeError("H.264 interleaved packetization is not supported")
        return H264Depacketizer(parameter_sets)
    if codec == "H265":
        if fmtp.get("sprop-max-don-diff", "0") != "0":
            raise DepacketizeError("H.265 with decoding order numbers is not supported")
        return H265Depacketizer(parameter_sets)
    raise DepacketizeError(f"video codec {codec or 'unknown'} is not supported (H.264, H.265)")
