"""A scripted ONVIF replay recorder on loopback, for what GStreamer's server cannot be made
to do on demand: gaps (the D bit and a jump in time), lost packets, digest with qop=auth,
Basic-only authentication, an error status for PLAY, a stream without the T bit.

It is a real RTSP/TCP server (one connection, in a thread) that sends real H.264: the
units of a small clip encoded here, packetised as a recorder does (single NAL units and
FU-A, the 0xABAC extension on each unit's first packet).
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

NTP_UNIX = 2208988800
MTU = 300  # small, so that FU-A is used
FPS = 25
SDP = (
    "v=0\r\ns=replay\r\nt=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n"
)


@dataclass(frozen=True)
class Unit:
    time: datetime
    data: bytes  # Annex B
    keyframe: bool


def encoded_units(start: datetime, frames: int, gop: int = FPS) -> list[Unit]:
    """`frames` H.264 units, a keyframe every `gop`, timed from `start` at 25 fps."""
    context = av.CodecContext.create("libx264", "w")
    context.width, context.height, context.pix_fmt = 160, 128, "yuv420p"
    context.time_base = Fraction(1, FPS)
    context.options = {"g": str(gop), "keyint_min": str(gop), "bf": "0", "preset": "veryfast"}
    packets = []
    for index in range(frames):
        image = np.zeros((128, 160, 3), np.uint8)
        image[:, :, 2] = (index * 9) % 256
        image[30:60, index * 2 % 120 :][:, :40] = 255
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index
        packets += context.encode(frame)
    packets += context.encode(None)
    step = timedelta(seconds=1 / FPS)
    return [Unit(start + i * step, bytes(p), p.is_keyframe) for i, p in enumerate(packets)]


def decode_units(units: list[bytes]) -> list[np.ndarray]:
    context = av.CodecContext.create("h264", "r")
    pictures = []
    for data in [*units, None]:
        packet = None if data is None else av.Packet(data)
        for frame in context.decode(packet):
            pictures.append(frame.to_ndarray(format="yuv420p"))
    return pictures


@dataclass
class Script:
    units: list[Unit]
    user: str = "operator"
    password: str = "pw"
    challenge: str | None = None  # a WWW-Authenticate value; None: no authentication
    play_status: str = "200 OK"
    discontinuity_at: frozenset[int] = frozenset()  # unit indexes sent with the D bit
    lose_packets: frozenset[int] = frozenset()  # RTP sequence numbers never sent
    terminal: bool = True  # T on the last packet
    channel: int = 0  # the interleaved channel it chooses for RTP (RTCP: the next one)
    requests: list[str] = field(default_factory=list)  # "METHOD headers..." as received
    authorized: list[bool] = field(default_factory=list)


class ScriptedRecorder:
    def __init__(self, script: Script) -> None:
        self.script = script
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/replay"

    def __enter__(self) -> ScriptedRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            reader = connection.makefile("rb")
            try:
                while self._answer(connection, reader):
                    pass
            except OSError:
                return

    def _answer(self, connection: socket.socket, reader: BinaryIO) -> bool:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()
            if not line:
                return False
            head += line
        text = head.decode()
        method, uri = text.split()[:2]
        self.script.requests.append(text)
        cseq = re.search(r"CSeq: (\d+)", text)

        def send(status: str, headers: str = "", body: str = "") -> None:
            start = f"RTSP/1.0 {status}\r\nCSeq: {cseq.group(1) if cseq else 0}\r\n"
            session = "Session: s1;timeout=60\r\n"
            connection.sendall(f"{start}{session}{headers}\r\n{body}".encode())

        if self.script.challenge and not self._authorized(method, text):
            send("401 Unauthorized", f"WWW-Authenticate: {self.script.challenge}\r\n")
        elif method == "DESCRIBE":
            headers = f"Content-Base: {uri}/\r\nContent-Length: {len(SDP)}\r\n"
            send("200 OK", headers, SDP)
        elif method == "SETUP":
            channels = f"{self.script.channel}-{self.script.channel + 1}"
            send("200 OK", f"Transport: RTP/AVP/TCP;unicast;interleaved={channels}\r\n")
        elif method == "PLAY":
            send(self.script.play_status)
            if self.script.play_status.startswith("200"):
                self._stream(connection)
        else:
            send("200 OK")
        return method != "TEARDOWN"

    def _authorized(self, method: str, text: str) -> bool:
        header = re.search(r"Authorization: Digest (.*)\r\n", text)
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.group(1))) if header else {}
        if not params:
            self.script.authorized.append(False)
            return False
        s = self.script
        ha1 = _md5(f"{s.user}:{params.get('realm')}:{s.password}")
        ha2 = _md5(f"{method}:{params.get('uri')}")
        if params.get("qop") == "auth":
            parts = (ha1, params["nonce"], params["nc"], params["cnonce"], "auth", ha2)
            expected = _md5(":".join(parts))
        else:
            expected = _md5(f"{ha1}:{params.get('nonce')}:{ha2}")
        ok = params.get("response") == expected and params.get("username") == s.user
        self.script.authorized.append(ok)
        return ok

    def _stream(self, connection: socket.socket) -> None:
        sequence = 1000
        units = self.script.units
        rtcp = b"\x80\xc8\x00\x06" + bytes(24)  # a sender report, on the RTCP channel
        connection.sendall(bytes([0x24, self.script.channel + 1, 0, len(rtcp)]) + rtcp)
        for index, unit in enumerate(units):
            packets = packetise(unit.data)
            for number, payload in enumerate(packets):
                flags = 0
                if number == 0:
                    flags |= 0x80 if unit.keyframe else 0
                    flags |= 0x20 if index in self.script.discontinuity_at else 0
                last = index == len(units) - 1 and number == len(packets) - 1
                if last and self.script.terminal:
                    flags |= 0x40 | 0x10
                packet = _rtp(payload, sequence, unit, number == len(packets) - 1, flags)
                if sequence not in self.script.lose_packets:
                    frame = struct.pack("!BBH", 0x24, self.script.channel, len(packet))
                    connection.sendall(frame + packet)
                sequence += 1


def packetise(data: bytes) -> list[bytes]:
    payloads = []
    for unit in filter(None, re.split(b"\x00\x00\x00\x01|\x00\x00\x01", data)):
        if len(unit) <= MTU:
            payloads.append(unit)
            continue
        indicator, kind = (unit[0] & 0xE0) | 28, unit[0] & 0x1F
        body = unit[1:]
        pieces = [body[i : i + MTU] for i in range(0, len(body), MTU)]
        for i, piece in enumerate(pieces):
            header = kind | (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
            payloads.append(bytes([indicator, header]) + piece)
    return payloads


def _rtp(payload: bytes, sequence: int, unit: Unit, marker: bool, flags: int) -> bytes:
    seconds = (unit.time - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() + NTP_UNIX
    ntp = round(seconds * 2**32)
    rtp_time = round(seconds * 90000) & 0xFFFFFFFF
    header = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | 96, sequence & 0xFFFF,
                         rtp_time, 0x5EED)  # fmt: skip
    extension = struct.pack("!HHQBBH", 0xABAC, 3, ntp, flags, 0, 0)
    return header + extension + payload


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
