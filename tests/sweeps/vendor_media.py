"""Recorder media for the vendor test peers, made here from real H.264: a numbered clip
(frame n shows n in binary, so a decoded frame says which one it is), packed as a Hikvision
MPEG program stream (the 40-byte IMKH header, a pack header, a program stream map and PES
packets: PyAV's own `mpeg` muxer writes no stream map, and FFmpeg then reads H.264 as audio)
and as a Dahua DHAV file (FFmpeg reads it; nothing writes it, so it is packed here too)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 25
BITS = 10  # columns of 16 px in a 160 px wide picture: frames up to 1023
_SIZE = (160, 120)
_CLOCK = 90000  # the MPEG system clock, Hz


@dataclass(frozen=True)
class Frame:
    data: bytes  # one access unit, Annex B
    pts: int  # in 1/FPS
    key: bool


def numbered_frames(count: int, first: int = 0, gop: int = FPS) -> list[Frame]:
    """`count` frames of H.264 (no B-frames, as cameras send) numbered from `first`, a
    keyframe every `gop`."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = *_SIZE, "yuv420p"
    codec.time_base, codec.framerate, codec.gop_size = Fraction(1, FPS), FPS, gop
    codec.options = {"bf": "0", "sc_threshold": "0", "keyint_min": str(gop), "preset": "veryfast"}
    frames: list[Frame] = []
    for index in [*range(count), None]:
        picture = None if index is None else _picture(first + index, index)
        for packet in codec.encode(picture):
            frames.append(Frame(bytes(packet), int(packet.pts or 0), packet.is_keyframe))
    return frames


def frame_number(frame: av.VideoFrame) -> int:
    """Which numbered frame a decoded picture is."""
    grey = frame.to_ndarray(format="gray")
    width = _SIZE[0] // BITS
    bits = [grey[:, b * width + 2 : (b + 1) * width - 2].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def _picture(number: int, index: int) -> av.VideoFrame:
    image = np.zeros((_SIZE[1], _SIZE[0], 3), dtype=np.uint8)
    width = _SIZE[0] // BITS
    for bit in range(BITS):
        if number >> bit & 1:
            image[:, bit * width : (bit + 1) * width] = 255
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts, frame.time_base = index, Fraction(1, FPS)
    return frame


# Hikvision: IMKH header + MPEG-2 program stream


def write_ps(path: Path, frames: list[Frame], imkh: bool = True) -> Path:
    """A Hikvision-style program stream of `frames`."""
    out = bytearray(_imkh_header() if imkh else b"")
    for frame in frames:
        ticks = frame.pts * _CLOCK // FPS + _CLOCK  # start at 1 s, as recorders do not start at 0
        out += _pack_header(ticks)
        if frame.key:
            out += _stream_map()
        out += _pes(frame.data, ticks)
    path.write_bytes(bytes(out))
    return path


def _imkh_header() -> bytes:
    # "IMKH", version, system format 2 (PS), video codec 1 (H.264); the rest zero: 40 bytes
    return b"IMKH" + struct.pack("<HHH", 0x0102, 0x0002, 0x0001) + bytes(30)


def _pack_header(scr: int) -> bytes:
    bits = (
        (0b01 << 46) | ((scr >> 30 & 7) << 43) | (1 << 42) | ((scr >> 15 & 0x7FFF) << 27)
        | (1 << 26) | ((scr & 0x7FFF) << 11) | (1 << 10) | 1  # SCR extension 0, marker
    )  # fmt: skip
    mux_rate = (20000 << 2) | 0b11  # 22 bits rate in 50 bytes/s, two markers
    return b"\x00\x00\x01\xba" + bits.to_bytes(6, "big") + mux_rate.to_bytes(3, "big") + b"\xf8"


def _stream_map() -> bytes:
    entries = bytes([0x1B, 0xE0]) + struct.pack(">H", 0)  # H.264 on stream E0
    body = bytes([0x80 | 1, 0xFF]) + struct.pack(">H", 0)  # current, version 1; no info
    body += struct.pack(">H", len(entries)) + entries + bytes(4)  # CRC (FFmpeg skips it)
    return b"\x00\x00\x01\xbc" + struct.pack(">H", len(body)) + body


def _pes(data: bytes, pts: int) -> bytes:
    out, first, limit = bytearray(), True, 65000
    for offset in range(0, len(data), limit):
        piece = data[offset : offset + limit]
        header = bytes([0x80, 0x80, 5]) + _timestamp(0b0010, pts) if first else b"\x80\x00\x00"
        out += b"\x00\x00\x01\xe0" + struct.pack(">H", len(header) + len(piece)) + header + piece
        first = False
    return bytes(out)


def _timestamp(prefix: int, ticks: int) -> bytes:
    return bytes(
        [
            (prefix << 4) | ((ticks >> 30 & 7) << 1) | 1,
            ticks >> 22 & 0xFF,
            ((ticks >> 15 & 0x7F) << 1) | 1,
            ticks >> 7 & 0xFF,
            ((ticks & 0x7F) << 1) | 1,
        ]
    )


# Dahua: DHAV


def write_dav(path: Path, frames: list[Frame], start: datetime) -> Path:
    """A Dahua DHAV file of `frames`, stamped from `start` (the recorder's wall clock)."""
    out = bytearray()
    for number, frame in enumerate(frames):
        out += _dhav_frame(number, frame, start)
    path.write_bytes(bytes(out))
    return path


def _dhav_frame(number: int, frame: Frame, start: datetime) -> bytes:
    millis = frame.pts * 1000 // FPS
    extensions = b""
    if frame.key:
        # 0x81: video format (codec 2 = H.264, frame rate); 0x82: picture size
        extensions += bytes([0x81, 0, 0x02, FPS])
        extensions += bytes([0x82, 0, 0, 0]) + struct.pack("<HH", *_SIZE)
    length = 24 + len(extensions) + len(frame.data) + 8
    header = b"DHAV" + bytes([0xFD if frame.key else 0xFC, 0, 0, 0])
    header += struct.pack("<II", number, length)
    header += struct.pack("<I", _dhav_date(start, millis // 1000))
    header += struct.pack("<H", millis & 0xFFFF) + bytes([len(extensions), 0])
    return header + extensions + frame.data + b"dhav" + struct.pack("<I", length)


def _dhav_date(start: datetime, seconds: int) -> int:
    total = start.hour * 3600 + start.minute * 60 + start.second + seconds
    hour, minute, second = total // 3600 % 24, total // 60 % 60, total % 60
    return (
        ((start.year - 2000) << 26) | (start.month << 22) | (start.day << 17)
        | (hour << 12) | (minute << 6) | second
    )  # fmt: skip
