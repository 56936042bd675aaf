"""RTP packets with the ONVIF 0xABAC extension, SDP, and H.264/H.265 depacketising, on
bytes built here as a recorder would send them."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime

import pytest

from privmask.adapters.depacketize import (
    DepacketizeError,
    H264Depacketizer,
    H265Depacketizer,
    depacketizer,
)
from privmask.adapters.rtp import (
    NTP_UNKNOWN,
    RtpError,
    datetime_to_ntp,
    ntp_to_datetime,
    parse_rtp,
    parse_sdp,
)

SC = b"\x00\x00\x00\x01"
WHEN = datetime(2026, 3, 29, 0, 30, 4, 800000, tzinfo=UTC)


def rtp(
    payload: bytes,
    seq: int = 1,
    ts: int = 9000,
    marker: bool = True,
    ntp: int | None = None,
    flags: int = 0,
    csrcs: int = 0,
    padding: int = 0,
    extension: tuple[int, bytes] | None = None,
) -> bytes:
    """An RTP packet; `ntp` adds the 0xABAC extension with `flags` (C E D T = 8 4 2 1 << 4)."""
    if ntp is not None:
        extension = (0xABAC, struct.pack("!QBBH", ntp, flags, 7, 0))
    b0 = 0x80 | (0x10 if extension else 0) | (0x20 if padding else 0) | csrcs
    data = struct.pack("!BBHII", b0, (0x80 if marker else 0) | 96, seq, ts, 0x1234)
    data += b"\x00\x00\x00\x01" * csrcs
    if extension:
        profile, body = extension
        data += struct.pack("!HH", profile, len(body) // 4) + body
    data += payload
    if padding:
        data += b"\x00" * (padding - 1) + bytes([padding])
    return data


def test_the_replay_extension_gives_the_utc_time_and_flags() -> None:
    packet = parse_rtp(rtp(b"\x65abc", seq=42, ntp=datetime_to_ntp(WHEN), flags=0x80 | 0x20))

    assert packet.stamp is not None
    assert packet.stamp.time == WHEN
    assert (packet.stamp.clean, packet.stamp.end, packet.stamp.discontinuity) == (True, False, True)
    assert (packet.stamp.terminal, packet.stamp.cseq) == (False, 7)
    assert (packet.sequence, packet.timestamp, packet.marker, packet.payload) == (
        42, 9000, True, b"\x65abc"
    )  # fmt: skip


def test_end_and_terminal_bits_and_an_unknown_time() -> None:
    packet = parse_rtp(rtp(b"\x41", ntp=NTP_UNKNOWN, flags=0x40 | 0x10))

    assert packet.stamp is not None
    assert (packet.stamp.end, packet.stamp.terminal, packet.stamp.time) == (True, True, None)


def test_csrcs_padding_and_other_extensions_are_skipped() -> None:
    other = parse_rtp(rtp(b"\x41xy", csrcs=2, padding=3, extension=(0xBEDE, b"\x10\xff\x00\x00")))

    assert other.payload == b"\x41xy"
    assert other.stamp is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x60\x00",  # shorter than a header
        b"\x40" + rtp(b"x")[1:],  # version 1
        rtp(b"", extension=(0xABAC, b"\x00" * 12))[:18],  # extension cut short
        b"\xa0" + rtp(b"x")[1:-1] + b"\xc8",  # padding longer than the packet
    ],
)
def test_broken_packets_are_refused(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_ntp_times_round_trip() -> None:
    assert ntp_to_datetime(datetime_to_ntp(WHEN)) == WHEN
    assert datetime_to_ntp(datetime(1970, 1, 1, tzinfo=UTC)) == 2208988800 << 32


GSTREAMER_SDP = """v=0
o=- 1188340656180883 1 IN IP4 127.0.0.1
s=Session streamed with GStreamer
t=0 0
a=tool:GStreamer
a=type:broadcast
a=control:*
a=range:npt=0-4
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
a=rtpmap:96 H264/90000
a=framerate:25
a=fmtp:96 packetization-mode=1;profile-level-id=64000c;sprop-parameter-sets=Z2QADKw=,aO48sA==
a=control:stream=0
"""


def test_sdp_controls_resolve_against_the_content_base() -> None:
    sdp = parse_sdp(GSTREAMER_SDP, "rtsp://127.0.0.1:8554/rec/")

    (track,) = sdp.tracks
    assert sdp.control == "rtsp://127.0.0.1:8554/rec"
    assert (track.kind, track.codec, track.clock_rate, track.payload_type) == (
        "video", "H264", 90000, 96
    )  # fmt: skip
    assert track.control == "rtsp://127.0.0.1:8554/rec/stream=0"
    assert track.parameter_sets() == [base64.b64decode("Z2QADKw="), base64.b64decode("aO48sA==")]


def test_h265_parameter_sets_and_absolute_controls() -> None:
    text = (
        "v=0\r\na=control:rtsp://nvr/replay/1\r\nm=video 0 RTP/AVP 98\r\n"
        "a=rtpmap:98 H265/90000\r\na=fmtp:98 sprop-vps=QAE=; sprop-sps=QgE=; sprop-pps=RAE=\r\n"
        "a=control:rtsp://nvr/replay/1/track1\r\nm=audio 0 RTP/AVP 0\r\na=control:track2\r\n"
    )
    sdp = parse_sdp(text, "rtsp://nvr/replay/1")

    video, audio = sdp.tracks
    assert (sdp.control, video.control, audio.control) == (
        "rtsp://nvr/replay/1", "rtsp://nvr/replay/1/track1", "rtsp://nvr/replay/1/track2"
    )  # fmt: skip
    assert video.parameter_sets() == [b"\x40\x01", b"\x42\x01", b"\x44\x01"]


SPS, PPS, IDR, SLICE = b"\x67sps", b"\x68pps", b"\x65" + b"i" * 40, b"\x41" + b"p" * 40


def test_h264_single_stap_a_and_fu_a_make_one_annex_b_unit() -> None:
    depay = H264Depacketizer()
    stap = b"\x78" + struct.pack("!H", len(SPS)) + SPS + struct.pack("!H", len(PPS)) + PPS
    fu = [b"\x7c\x85" + IDR[1:20], b"\x7c\x05" + IDR[20:30], b"\x7c\x45" + IDR[30:]]
    packets = [rtp(stap, 1, marker=False, ntp=5, flags=0x80)]
    packets += [rtp(part, 2 + i, marker=i == 2) for i, part in enumerate(fu)]

    units = [u for p in packets for u in depay.push(parse_rtp(p))]

    (unit,) = units
    assert unit.data == SC + SPS + SC + PPS + SC + IDR
    assert unit.keyframe and not unit.damaged
    assert unit.stamp is not None and unit.stamp.ntp == 5


def test_sdp_parameter_sets_go_before_a_keyframe_without_its_own() -> None:
    depay = H264Depacketizer([SPS, PPS])

    (key,) = depay.push(parse_rtp(rtp(IDR, 1)))
    (delta,) = depay.push(parse_rtp(rtp(SLICE, 2, ts=12600)))

    assert key.data == SC + SPS + SC + PPS + SC + IDR
    assert delta.data == SC + SLICE and not delta.keyframe


def test_a_lost_packet_damages_its_unit() -> None:
    depay = H264Depacketizer()
    depay.push(parse_rtp(rtp(b"\x7c\x85" + IDR[1:20], 1, marker=False)))

    (unit,) = depay.push(parse_rtp(rtp(b"\x7c\x45" + IDR[30:], 3)))  # 2 is missing

    assert unit.damaged


def test_a_lost_marker_closes_the_unit_damaged_at_the_next_timestamp() -> None:
    depay = H264Depacketizer()
    depay.push(parse_rtp(rtp(SLICE, 1, ts=100, marker=False)))

    first, second = depay.push(parse_rtp(rtp(SLICE, 2, ts=3700)))

    assert first.damaged and first.rtp_time == 100
    assert not second.damaged and second.rtp_time == 3700


def test_end_and_terminal_bits_on_any_packet_mark_the_unit() -> None:
    depay = H264Depacketizer()
    depay.push(parse_rtp(rtp(b"\x5c\x81" + SLICE[1:20], 1, marker=False, ntp=9)))

    (unit,) = depay.push(parse_rtp(rtp(b"\x5c\x41" + SLICE[20:], 2, ntp=9, flags=0x40 | 0x10)))

    assert unit.end and unit.terminal and unit.data == SC + SLICE


H265_IDR = bytes([19 << 1, 1]) + b"i" * 30  # IDR_W_RADL
H265_VPS, H265_SPS, H265_PPS = b"\x40\x01v", b"\x42\x01s", b"\x44\x01p"


def test_h265_aggregation_and_fragmentation_units() -> None:
    depay = H265Depacketizer()
    ap = bytes([48 << 1, 1]) + b"".join(
        struct.pack("!H", len(n)) + n for n in (H265_VPS, H265_SPS, H265_PPS)
    )
    fu_header = bytes([49 << 1, 1])
    packets = [
        rtp(ap, 1, marker=False),
        rtp(fu_header + bytes([0x80 | 19]) + H265_IDR[2:12], 2, marker=False),
        rtp(bytes([50 << 1, 1]) + b"paci", 3, marker=False),  # skipped
        rtp(fu_header + bytes([0x40 | 19]) + H265_IDR[12:], 4),
    ]

    (unit,) = [u for p in packets for u in depay.push(parse_rtp(p))]

    assert unit.data == SC + H265_VPS + SC + H265_SPS + SC + H265_PPS + SC + H265_IDR
    assert unit.keyframe and not unit.damaged


def test_unsupported_modes_are_refused_clearly() -> None:
    with pytest.raises(DepacketizeError, match="decoding order"):
        depacketizer("H265", {"sprop-max-don-diff": "2"}, [])
    with pytest.raises(DepacketizeError, match="MP4V-ES"):
        depacketizer("MP4V-ES", {}, [])
    with pytest.raises(DepacketizeError, match="type 25"):
        H264Depacketizer().push(parse_rtp(rtp(b"\x19stap-b")))
