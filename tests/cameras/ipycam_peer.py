"""Run one real ipycam ONVIF device on 127.0.0.1 for the camera tests.

Started by the tests with the interpreter of ipycam's own venv (its opencv-python GUI wheel
must never sit beside the project's headless one), always inside a private network
namespace, because ipycam binds 0.0.0.0 and answers multicast probes.

Usage: python ipycam_peer.py --port 8080 --rtsp-port 8554 --serial PY-1
       [--username USER --password-file FILE] [--clock-offset SECONDS]
Prints "READY <device-service-url>" once the device answers, then serves until SIGTERM.
This file must not import privmask: it runs in another interpreter.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rtsp-port", type=int, default=8554)
    parser.add_argument("--serial", default="PY-000001")
    parser.add_argument("--model", default="VirtualCam-1")
    parser.add_argument("--firmware", default="")
    parser.add_argument("--username", default="")
    parser.add_argument("--password-file", default="", help="file holding the password")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="device clock - ours")
    args = parser.parse_args()
    if args.clock_offset:
        set_clock_off(args.clock_offset)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from ipycam import CameraConfig, IPCamera

    config = CameraConfig(
        local_ip="127.0.0.1",
        onvif_port=args.port,
        rtsp_port=args.rtsp_port,
        # nothing listens on these; ipycam only probes them
        go2rtc_api_port=args.port + 1,
        web_port=args.port + 2,
        rtmp_port=args.port + 3,
        serial_number=args.serial,
        model=args.model,
        name=f"peer-{args.serial}",
    )
    if args.firmware:
        config.firmware_version = args.firmware
    if args.username:
        with open(args.password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
        config.set_credentials(args.username, password)
    camera = IPCamera(config)
    if not camera.start():
        print("FAILED", flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    url = config.onvif_url
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{args.port}/static/", timeout=1)
            break
        except Exception as exc:  # any HTTP answer (even 404) means it is up
            if hasattr(exc, "code"):
                break
            time.sleep(0.1)
    print(f"READY {url}", flush=True)
    stop.wait()
    camera.stop()
    return 0


def set_clock_off(seconds: float) -> None:
    """The device's clock `seconds` off the host's, as a camera without NTP is: the time
    GetSystemDateAndTime tells and the one a WS-Security Created is checked against (the
    two clocks ipycam.onvif reads). And GetSystemDateAndTime answered without credentials,
    as ONVIF Core has it (ipycam 1.3.0 wants them even there, and a camera that does so
    while hours off cannot be signed for by anyone)."""
    import re
    import types
    from datetime import datetime, timedelta

    import ipycam.onvif as device

    time_asked = re.compile(r"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?GetSystemDateAndTime\b")
    verify = device.ONVIFService.verify_usernametoken

    def pre_auth(self, soap_body: str) -> bool:  # type: ignore[no-untyped-def]
        return bool(time_asked.search(soap_body)) or verify(self, soap_body)

    device.ONVIFService.verify_usernametoken = pre_auth  # type: ignore[method-assign]

    class DeviceTime(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return super().now(tz) + timedelta(seconds=seconds)

    clock = types.SimpleNamespace(**vars(time))
    clock.gmtime = lambda *_: time.gmtime(time.time() + seconds)
    device.datetime = DeviceTime  # type: ignore[misc]
    device.time = clock  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())
