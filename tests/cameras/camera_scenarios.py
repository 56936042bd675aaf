"""Scenarios run inside the tests' private network namespace (see camera_netns.py).

Each scenario starts real ipycam devices on 127.0.0.1, drives privmask's camera code (the
Python API and the real CLI, as a subprocess), and prints one JSON line with what it saw;
the tests assert on that. Run as: python camera_scenarios.py NAME PARAMS_JSON
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog.testing

from privmask.adapters import onvif
from privmask.daemon import cameras

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
PASSWORD = "s3cret-pass"
DISCOVERY_TIMEOUT = 1.0


@contextmanager
def peer(params: dict[str, Any], port: int, serial: str, **options: str) -> Iterator[str]:
    """One ipycam device on `port`; yields its device service URL; stopped on exit."""
    command = [
        params["peer_python"],
        str(HERE / "ipycam_peer.py"),
        "--port",
        str(port),
        "--rtsp-port",
        str(port + 10),
        "--serial",
        serial,
    ]
    if options.get("username"):
        secret = Path(params["work"]) / f"peer-{port}.pw"
        secret.write_text(PASSWORD)
        command += ["--username", options["username"], "--password-file", str(secret)]
    if options.get("firmware"):
        command += ["--firmware", options["firmware"]]
    if options.get("clock_offset"):
        command += ["--clock-offset", options["clock_offset"]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"ipycam on port {port} did not start: {line!r}")
        yield line.split()[1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_secrets(work: Path, entries: dict[str, dict[str, str]]) -> Path:
    path = work / "camera-secrets.yaml"
    path.touch(mode=0o600)
    path.write_text(json.dumps(entries))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `privmask` command line."""
    return subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def scenario_estate(params: dict[str, Any]) -> dict[str, Any]:
    """An open camera, one with the right password, one with a wrong password, and one
    whose address is dead: all four reported, each on its own."""
    work = Path(params["work"])
    with (
        peer(params, 8080, "PY-OPEN"),
        peer(params, 8180, "PY-AUTH", username="admin"),
        peer(params, 8280, "PY-WRONG", username="admin"),
    ):
        secrets_file = write_secrets(
            work,
            {
                "127.0.0.1:8180": {"username": "admin", "password": PASSWORD},
                "127.0.0.1:8280": {"username": "admin", "password": "not-the-password"},
            },
        )
        started = time.monotonic()
        devices = onvif.discover(LOOPBACK, DISCOVERY_TIMEOUT)
        discover_seconds = time.monotonic() - started
        dead = onvif.DiscoveredDevice(
            "urn:uuid:00000000-0000-0000-0000-00000000dead",
            ("http://127.0.0.1:8999/onvif/device_service",),
        )
        secrets = cameras.load_secrets(secrets_file)
        results = cameras.describe_all([*devices, dead], secrets, timeout=3)
        done = cli(
            "cameras",
            "discover",
            "--interface",
            LOOPBACK,
            "--timeout",
            "1",
            "--json",
            "--secrets",
            str(secrets_file),
        )
        text = cli(
            "cameras",
            "discover",
            "--interface",
            LOOPBACK,
            "--timeout",
            "1",
            "--secrets",
            str(secrets_file),
        )
    return {
        "discover_seconds": discover_seconds,
        "devices": [
            {"endpoint": d.endpoint, "xaddrs": list(d.xaddrs), "scopes": list(d.scopes)}
            for d in devices
        ],
        "results": [_plain(r) for r in results],
        "cli_json": {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr},
        "cli_text": {"rc": text.returncode, "stdout": text.stdout, "stderr": text.stderr},
    }


def scenario_inventory(params: dict[str, Any]) -> dict[str, Any]:
    """Added, offline after the camera stops, back online (and changed) when it returns."""
    state = Path(params["work"]) / "state"
    inventory = cameras.inventory_path(state)
    rounds = []
    with structlog.testing.capture_logs() as logs:
        with peer(params, 8080, "PY-INV", firmware="1.0"):
            rounds.append(cameras.rediscover(inventory, LOOPBACK, DISCOVERY_TIMEOUT, None))
            rounds.append(cameras.rediscover(inventory, LOOPBACK, DISCOVERY_TIMEOUT, None))
            first = json.loads(inventory.read_text())
        rounds.append(cameras.rediscover(inventory, LOOPBACK, DISCOVERY_TIMEOUT, None))
        offline = json.loads(inventory.read_text())
        with peer(params, 8080, "PY-INV", firmware="2.0"):
            rounds.append(cameras.rediscover(inventory, LOOPBACK, DISCOVERY_TIMEOUT, None))
        back = json.loads(inventory.read_text())
    return {
        "rounds": [[_plain(e) for e in events] for events in rounds],
        "logs": logs,
        "first": first,
        "offline": offline,
        "back": back,
        "state": str(state),
    }


def scenario_clock(params: dict[str, Any]) -> dict[str, Any]:
    """Cameras whose clocks are 3 h ahead of ours and 3 h behind, described with the
    right password; and one 3 h ahead asked with a wrong one."""
    cameras = [  # serial, port, device clock - ours (s), password
        ("PY-AHEAD", 8080, "10800", PASSWORD),
        ("PY-BEHIND", 8180, "-10800", PASSWORD),
        ("PY-WRONG", 8280, "10800", "not-the-password"),
    ]
    results = {}
    for serial, port, offset, password in cameras:
        with peer(params, port, serial, username="admin", clock_offset=offset) as url:
            device = onvif.DiscoveredDevice(f"urn:uuid:{serial}", (url,))
            credentials = onvif.Credentials("admin", password)
            results[serial] = _plain(onvif.describe(device, credentials, timeout=3))
    return {"results": results}


def _plain(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {"type": type(value).__name__, **asdict(value)}


def scenario_daemon(params: dict[str, Any]) -> dict[str, Any]:
    """`privmask run` with camera discovery on: the inventory fills while the service runs."""
    work = Path(params["work"])
    for folder in ("inbox", "outbox"):
        (work / folder).mkdir(exist_ok=True)
    config = work / "privmask.yaml"
    config.write_text(
        json.dumps(
            {
                "inboxes": [str(work / "inbox")],
                "outbox": str(work / "outbox"),
                "quarantine": str(work / "quarantine"),
                "state": str(work / "state"),
                "cameras": {"discover_seconds": 1, "interface": LOOPBACK, "timeout": 1},
            }
        )
    )
    with peer(params, 8080, "PY-DAEMON"):
        service = subprocess.Popen(
            [sys.executable, "-m", "privmask.daemon.cli", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        assert service.stderr is not None
        for line in service.stderr:
            if line.startswith("{"):
                events.append(json.loads(line))
            if any(e.get("event") == "camera_added" for e in events) or time.monotonic() > deadline:
                break
        service.terminate()
        service.wait(60)
    listing = cli("cameras", "list", "--state", str(work / "state"), "--json")
    return {
        "events": [e.get("event") for e in events],
        "list": listing.stdout,
        "code": service.returncode,
    }


ROGUE_HTTP_PORT = 8380
# what a rogue responder sends back to a probe: (endpoint, RelatesTo or None for none)
ROGUE_REPLIES = (
    ("urn:uuid:rogue-unrelated", None),
    ("urn:uuid:rogue-wrong-probe", "urn:uuid:00000000-0000-0000-0000-000000000000"),
    ("urn:uuid:rogue-impostor", "{probe}"),  # answers our probe properly: a device, unnamed
)
ROGUE_MATCH = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" \
xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" \
xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>
<a:MessageID>urn:uuid:{reply_id}</a:MessageID>{relates}</s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch>
<a:EndpointReference><a:Address>{endpoint}</a:Address></a:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:XAddrs>http://127.0.0.1:{port}/onvif/device_service</d:XAddrs>
</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


@contextmanager
def rogue(port: int) -> Iterator[list[dict[str, str]]]:
    """A rogue on the segment: it answers every probe it hears three ways (no RelatesTo, a
    wrong one, the right one), all pointing at an HTTP server of its own that asks for
    HTTP Digest and records every request (headers and body) it gets."""
    requests: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append({"headers": str(self.headers), "body": body.decode(errors="replace")})
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Digest realm="cam", nonce="n0", qop="auth"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, port), Recorder)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind(("", 3702))
    group = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(LOOPBACK))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
    udp.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data, sender = udp.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            probe = re.search(r"MessageID>([^<]+)<", text)
            if "ProbeMatch" in text or "/discovery/Probe<" not in text or not probe:
                continue
            for n, (endpoint, relates_to) in enumerate(ROGUE_REPLIES):
                relates = ""
                if relates_to is not None:
                    relates = f"<a:RelatesTo>{relates_to.format(probe=probe[1])}</a:RelatesTo>"
                reply = ROGUE_MATCH.format(
                    reply_id=f"rogue-{n}-{time.monotonic_ns()}",
                    relates=relates,
                    endpoint=endpoint,
                    port=port,
                )
                udp.sendto(reply.encode(), sender)

    threads = [
        threading.Thread(target=server.serve_forever, daemon=True),
        threading.Thread(target=answer, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield requests
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        threads[1].join(5)
        udp.close()


def scenario_rogue(params: dict[str, Any]) -> dict[str, Any]:
    """A rogue responder beside a camera named in the secrets file and one that is not,
    with a `"*"` entry holding the site's usual password: who gets credentials?"""
    work = Path(params["work"])
    with (
        peer(params, 8180, "PY-NAMED", username="admin"),
        peer(params, 8280, "PY-UNNAMED", username="admin"),
        rogue(ROGUE_HTTP_PORT) as requests,
    ):
        secrets_file = write_secrets(
            work,
            {
                "*": {"username": "admin", "password": PASSWORD},
                "127.0.0.1:8180": {"username": "admin", "password": PASSWORD},
            },
        )
        devices = onvif.discover(LOOPBACK, DISCOVERY_TIMEOUT)
        results = cameras.describe_all(devices, cameras.load_secrets(secrets_file), timeout=3)
        done = cli(
            "cameras",
            "discover",
            "--interface",
            LOOPBACK,
            "--timeout",
            "1",
            "--json",
            "--secrets",
            str(secrets_file),
        )
    return {
        "endpoints": sorted(d.endpoint for d in devices),
        "results": [_plain(r) for r in results],
        "requests": requests,
        "cli_json": {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr},
    }


SCENARIOS = {
    "estate": scenario_estate,
    "inventory": scenario_inventory,
    "daemon": scenario_daemon,
    "rogue": scenario_rogue,
    "clock": scenario_clock,
}

if __name__ == "__main__":
    answer = SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(answer, default=str))
