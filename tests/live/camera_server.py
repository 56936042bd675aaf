"""A camera-like RTSP server on loopback: gst-rtsp-server playing an MP4 file over RTP.

Run with Debian's system Python (python3-gi, gir1.2-gst-rtsp-server-1.0), not the project's
venv: `python3 camera_server.py --port P --file clip.mp4`. It prints `ready` on stdout once
it listens. Every client gets the file from its start; the stream ends when the file does.
No shared media (one stream for all clients, as a camera serves it): Debian 12's
gst-rtsp-server 1.22 breaks on it when clients come and go together (EPERM, invalid data,
then an assertion in gst_rtsp_media_get_rates ends the process).
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--path", default="/cam")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{args.file}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 )"
    )
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
