"""An ONVIF Profile G replay server on loopback: GStreamer's RTSPOnvifServer serving MP4
files as recordings with known absolute start times.

Run with Debian's system Python (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-good/-bad), not the project's venv:

    python3 replay_server.py --port P --recording /h264 2026-03-29T00:30:00Z clip.mp4 h264 \
        [--user U --password-file F] [--log requests.jsonl] [--die-after N]

It prints `ready` once it listens. A PLAY `Range: clock=A-B` reaches the media as a seek in
nanoseconds since 1900 (the NTP epoch); it is translated back into the file's own time, and
`rtponviftimestamp` (ntp-offset = the recording's start) stamps each packet with its UTC
time in the 0xABAC extension. GStreamer 1.22 (bookworm) fix, from the research: frames from
the first at or past the requested end on are dropped before the timestamper, which
otherwise fails on them and loses the packet that carries the E and T bits.

`--log` appends one JSON line per request (method, Require, Range, Rate-Control), so tests
can check what the client sent. `--die-after N` exits the process abruptly once N RTP
packets have been made (a recorder that goes away mid-stream).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, GObject, Gst, GstRtsp, GstRtspServer  # noqa: E402

NTP_UNIX = 2208988800
NONE = (-1, Gst.CLOCK_TIME_NONE)
HOLE = Gst.SECOND  # a longer step between frames of a file is a hole in the recording


class ReplayFactory(GstRtspServer.RTSPOnvifMediaFactory):  # type: ignore[misc]
    def __init__(self, path: str, start_ns: int, codec: str, die_after: int | None) -> None:
        super().__init__()
        self.path, self.start_ns, self.codec, self.die_after = path, start_ns, codec, die_after
        self.set_replay_support(True)
        self.set_media_gtype(GstRtspServer.RTSPOnvifMedia)

    def do_create_element(self, url: Any) -> Gst.Element:
        top = Gst.Bin.new(None)
        source = Gst.ElementFactory.make("filesrc")
        source.set_property("location", self.path)
        demux = Gst.ElementFactory.make("qtdemux")
        pay = Gst.parse_bin_from_description(
            f"queue ! {self.codec}parse config-interval=-1 ! rtp{self.codec}pay pt=96 ! "
            f"identity name=sent ! rtponviftimestamp ntp-offset={self.start_ns} "
            "set-e-bit=true set-t-bit=true drop-out-of-segment=false ! queue",
            True,
        )
        pay.set_name("pay0")
        for element in (source, demux, pay):
            top.add(element)
        source.link(demux)
        sink = pay.get_static_pad("sink")
        demux.connect("pad-added", lambda _d, pad: _link_video(pad, sink))
        stop: dict[str, Any] = {"at": None, "ended": False}
        sink.add_probe(Gst.PadProbeType.BUFFER, _drop_late, stop)
        sink.add_probe(Gst.PadProbeType.BUFFER, _mark_holes, (self.start_ns, {"last": None}))
        sink.add_probe(Gst.PadProbeType.EVENT_UPSTREAM, self._translate_seek, (demux, stop))
        if self.die_after is not None:
            sent = pay.get_by_name("sent").get_static_pad("src")
            sent.add_probe(Gst.PadProbeType.BUFFER, _die_after, {"left": self.die_after})
        return top

    def _translate_seek(self, pad: Gst.Pad, info: Gst.PadProbeInfo, data: Any) -> Any:
        demux, stop = data
        event = info.get_event()
        if event.type != Gst.EventType.SEEK:
            return Gst.PadProbeReturn.OK
        rate, fmt, flags, start_type, start, stop_type, end = event.parse_seek()
        if start < self.start_ns and (end in NONE or end < self.start_ns):
            return Gst.PadProbeReturn.OK  # a seek in the file's own time (the first PLAY)
        new_start = max(0, start - self.start_ns) if start_type != Gst.SeekType.NONE else start
        new_end = end if end in NONE else max(0, end - self.start_ns)
        stop["at"] = None if new_end in NONE else new_end
        stop["ended"] = False
        seek = Gst.Event.new_seek(rate, fmt, flags, start_type, new_start, stop_type, new_end)
        seek.set_seqnum(event.get_seqnum())
        handled = demux.send_event(seek)
        return Gst.PadProbeReturn.HANDLED if handled else Gst.PadProbeReturn.DROP


def _link_video(pad: Gst.Pad, sink: Gst.Pad) -> None:
    if pad.get_name().startswith("video"):
        pad.link(sink)


def _drop_late(pad: Gst.Pad, info: Gst.PadProbeInfo, stop: dict[str, Any]) -> Any:
    # everything from the first frame at or past the end on (in decoding order), so that
    # no B-frame goes out without the frame it refers to
    buffer = info.get_buffer()
    at = stop["at"]
    if at is not None and buffer.pts != Gst.CLOCK_TIME_NONE and buffer.pts >= at:
        stop["ended"] = True
    return Gst.PadProbeReturn.DROP if stop["ended"] else Gst.PadProbeReturn.OK


def _mark_holes(pad: Gst.Pad, info: Gst.PadProbeInfo, data: Any) -> Any:
    """A jump in the file's timeline is a hole in the recording: tell rtponviftimestamp, as
    GStreamer's ONVIF example does, so that E goes on the packet before and D after."""
    start_ns, seen = data
    pts = info.get_buffer().pts
    if pts == Gst.CLOCK_TIME_NONE:
        return Gst.PadProbeReturn.OK
    if seen["last"] is not None and pts - seen["last"] > HOLE:
        marker = Gst.Structure.new_empty("GstOnvifTimestamp")
        marker.set_value("ntp-offset", GObject.Value(GObject.TYPE_UINT64, start_ns))
        marker.set_value("discont", True)
        pad.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM, marker))
    seen["last"] = pts
    return Gst.PadProbeReturn.OK


def _die_after(pad: Gst.Pad, info: Gst.PadProbeInfo, count: dict[str, int]) -> Any:
    count["left"] -= 1
    if count["left"] < 0:
        os._exit(3)  # abruptly, as a recorder that loses power
    return Gst.PadProbeReturn.OK


class RequestLog:
    """One JSON line per request a client makes."""

    FIELDS = {
        "require": GstRtsp.RTSPHeaderField.REQUIRE,
        "range": GstRtsp.RTSPHeaderField.RANGE,
        "rate_control": GstRtsp.RTSPHeaderField.RATE_CONTROL,
        "authorization": GstRtsp.RTSPHeaderField.AUTHORIZATION,
    }
    SIGNALS = ("options", "describe", "setup", "play", "teardown", "get-parameter")

    def __init__(self, path: Path) -> None:
        self.path = path

    def watch(self, server: GstRtspServer.RTSPServer) -> None:
        server.connect("client-connected", self._client)

    def _client(self, _server: Any, client: GstRtspServer.RTSPClient) -> None:
        for name in self.SIGNALS:
            client.connect(f"{name}-request", self._request, name)

    def _request(self, _client: Any, context: Any, name: str) -> None:
        request = context.request
        entry: dict[str, Any] = {"method": name.upper().replace("-", "_")}
        for key, field in self.FIELDS.items():
            result, value = request.get_header(field, 0)
            entry[key] = value if result == GstRtsp.RTSPResult.OK else None
        entry["authorization"] = entry["authorization"] is not None
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")


def _auth(user: str, password: str) -> tuple[Any, Any]:
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_digest(user, password, token)
    permissions = GstRtspServer.RTSPPermissions()
    for permission in (
        GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
        GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
    ):
        permissions.add_permission_for_role("user", permission, True)
    return auth, permissions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--recording", nargs=4, action="append", required=True,
        metavar=("MOUNT", "START", "FILE", "CODEC"),
    )  # fmt: skip
    parser.add_argument("--user")
    parser.add_argument("--password-file", type=Path)  # never a password in argv
    parser.add_argument("--log", type=Path)
    parser.add_argument("--die-after", type=int)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPOnvifServer.new()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    permissions = None
    if args.user:
        password = args.password_file.read_text().strip()
        auth, permissions = _auth(args.user, password)
        server.set_auth(auth)
    for mount, start, path, codec in args.recording:
        moment = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC)
        start_ns = round((moment.timestamp() + NTP_UNIX) * Gst.SECOND)
        factory = ReplayFactory(path, start_ns, codec, args.die_after)
        if permissions is not None:
            factory.set_permissions(permissions)
        server.get_mount_points().add_factory(mount, factory)
    if args.log:
        RequestLog(args.log).watch(server)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
