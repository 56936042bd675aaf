"""The parts that need no network: credential stripping, probe parsing, merging, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from privmask.adapters.onvif import (
    CameraError,
    CameraInfo,
    Credentials,
    DiscoveredDevice,
    Profile,
    parse_probe_matches,
)
from privmask.adapters.urls import redact
from privmask.daemon import cameras, cli
from privmask.daemon.camera_settings import CamerasSpec, StreamSpec
from privmask.daemon.secrets import SecretError

SECRET = "hunter2-camera"


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        (
            "rtsp://admin:hunter2-camera@10.0.0.5:554/Streaming/101",
            "rtsp://10.0.0.5:554/Streaming/101",
        ),
        ("rtsp://admin@10.0.0.5/live", "rtsp://10.0.0.5/live"),
        (
            "rtsp://10.0.0.6/cam/realmonitor?channel=1&subtype=0&user=admin&password=hunter2-camera",
            "rtsp://10.0.0.6/cam/realmonitor?channel=1&subtype=0",
        ),
        ("http://10.0.0.7/snap.jpg?PWD=hunter2-camera", "http://10.0.0.7/snap.jpg"),
        ("rtsp://[fe80::1]:554/a", "rtsp://[fe80::1]:554/a"),
        ("rtsp://10.0.0.8/stream1", "rtsp://10.0.0.8/stream1"),
    ],
)
def test_redact_camera_uris(url: str, clean: str) -> None:
    assert redact(url) == clean


MATCH = b"""<?xml version="1.0"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Header><a:RelatesTo>urn:uuid:probe-1</a:RelatesTo></s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch>
<a:EndpointReference><a:Address>urn:uuid:cam-1</a:Address></a:EndpointReference>
<d:XAddrs>http://10.0.0.5/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs>
<d:Scopes>onvif://www.onvif.org/name/Gate</d:Scopes>
</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


@pytest.mark.parametrize("prefix", [b"a", b"d"])
def test_probe_match_parsing(prefix: bytes) -> None:
    # the spec puts EndpointReference in the addressing namespace (a:); ipycam and some
    # cameras use the discovery one (d:): both are accepted
    data = MATCH.replace(b"a:EndpointReference", prefix + b":EndpointReference")
    (device,) = parse_probe_matches(data, "urn:uuid:probe-1")
    assert device.endpoint == "urn:uuid:cam-1"
    assert device.address == "http://10.0.0.5/onvif/device_service"
    assert device.scopes == ("onvif://www.onvif.org/name/Gate",)
    assert parse_probe_matches(data, "urn:uuid:other-probe") == []
    assert parse_probe_matches(b"<not xml", None) == []


def test_a_probe_match_without_relates_to_is_no_answer_to_our_probe() -> None:
    unrelated = MATCH.replace(b"<a:RelatesTo>urn:uuid:probe-1</a:RelatesTo>", b"")
    assert parse_probe_matches(unrelated, "urn:uuid:probe-1") == []


def test_probe_match_entities_are_not_expanded() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + (
        MATCH.split(b"?>", 1)[1].replace(b"Gate", b"&e;")
    )
    for device in parse_probe_matches(bomb, None):
        assert "root:" not in " ".join(device.scopes)


def _info(serial: str = "SN1", firmware: str = "1.0", user: str = "") -> CameraInfo:
    auth = f"admin:{SECRET}@" if user else ""
    return CameraInfo(
        endpoint="urn:uuid:cam-1",
        address="http://10.0.0.5/onvif/device_service",
        manufacturer="Acme",
        model="Dome",
        firmware=firmware,
        serial=serial,
        profiles=(Profile("p1", "main", "H264", 1920, 1080),),
        main_stream=f"rtsp://{auth}10.0.0.5/main",
        sub_stream=f"rtsp://{auth}10.0.0.5/sub?user=admin&password={SECRET}",
        snapshot=f"http://{auth}10.0.0.5/snap.jpg",
    )


def test_merge_added_offline_online_changed() -> None:
    inv, events = cameras.merge({}, [_info()], now="t1")
    assert [e.event for e in events] == ["camera_added"]
    inv, events = cameras.merge(inv, [], now="t2")
    assert [e.event for e in events] == ["camera_offline"]
    assert inv["SN1"]["state"] == "offline" and inv["SN1"]["last_seen"] == "t1"
    inv, events = cameras.merge(inv, [], now="t3")
    assert events == []  # offline is reported once
    inv, events = cameras.merge(inv, [_info(firmware="2.0")], now="t4")
    assert [e.event for e in events] == ["camera_online", "camera_changed"]
    assert events[1].detail == "firmware"
    assert inv["SN1"]["first_seen"] == "t1" and inv["SN1"]["last_seen"] == "t4"


def test_error_then_success_moves_the_camera_to_its_serial() -> None:
    error = CameraError(
        "urn:uuid:cam-1", "http://10.0.0.5/onvif/device_service", "unauthorized", "x"
    )
    inv, events = cameras.merge({}, [error], now="t1")
    assert list(inv) == ["cam-1"] and inv["cam-1"]["state"] == "error"
    assert [e.event for e in events] == ["camera_added", "camera_error"]
    inv, events = cameras.merge(inv, [_info()], now="t2")
    assert list(inv) == ["SN1"] and inv["SN1"]["first_seen"] == "t1"
    assert "camera_online" in [e.event for e in events]
    # a known camera that later refuses keeps its id (found by endpoint)
    inv, events = cameras.merge(inv, [error], now="t3")
    assert list(inv) == ["SN1"] and inv["SN1"]["state"] == "error"


def test_stored_inventory_never_holds_credentials(tmp_path: Path) -> None:
    path = cameras.inventory_path(tmp_path)
    inv, _ = cameras.merge({}, [_info(user="admin")])
    cameras.save_inventory(path, inv)
    text = path.read_text()
    assert SECRET not in text and "admin" not in text
    assert cameras.load_inventory(path)["SN1"]["sub_stream"] == "rtsp://10.0.0.5/sub"


def test_secrets_file_must_not_be_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f"10.0.0.5: {{username: admin, password: {SECRET}}}\n")
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="chmod 600") as caught:
        cameras.load_secrets(path)
    assert SECRET not in str(caught.value)
    os.chmod(path, 0o600)
    secrets = cameras.load_secrets(path)
    device = DiscoveredDevice("urn:uuid:cam-1", ("http://10.0.0.5/onvif/device_service",))
    assert secrets.for_device(device) == Credentials("admin", SECRET)
    assert SECRET not in repr(secrets.for_device(device))


def test_secrets_lookup_prefers_the_most_specific_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {
                "cameras": {
                    "*": {"username": "default", "password": "d"},
                    "10.0.0.5:8080": {"username": "by-port", "password": "p"},
                    "SN9": {"username": "by-serial", "password": "s"},
                }
            }
        )
    )
    secrets = cameras.load_secrets(path)
    on_port = DiscoveredDevice("urn:uuid:x", ("http://10.0.0.5:8080/onvif/device_service",))
    other = DiscoveredDevice("urn:uuid:y", ("http://10.0.0.6/onvif/device_service",))
    assert secrets.for_device(on_port).username == "by-port"  # type: ignore[union-attr]
    assert secrets.for_device(on_port, "SN9").username == "by-serial"  # type: ignore[union-attr]
    # "*" is never sent to a device that merely answered a probe
    assert secrets.for_device(other) is None


def test_bad_secrets_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.touch(mode=0o600)
    path.write_text("10.0.0.5: {username: admin}\n")
    with pytest.raises(SecretError, match="needs a username and a password"):
        cameras.load_secrets(path)


def test_cli_list_on_a_damaged_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cameras.inventory_path(tmp_path).write_text("{broken")
    assert cli.main(["cameras", "list", "--state", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not a camera inventory" in err and "Traceback" not in err
    assert cli.main(["cameras", "list", "--state", str(tmp_path / "empty")]) == 0
    assert "no cameras" in capsys.readouterr().err


def test_live_streams_add_credentials_by_the_one_lookup(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.touch(mode=0o600)
    secrets.write_text(
        json.dumps(
            {
                "*": {"username": "default", "password": "d"},
                "GATE": {"username": "by-id", "password": "p@ss/1"},
                "10.0.0.9:8554": {"username": "by-port", "password": SECRET},
                "SN1": {"username": "by-serial", "password": "s"},
            }
        )
    )
    state = tmp_path / "state"
    cameras.save_inventory(
        cameras.inventory_path(state),
        {
            "SN1": {"state": "online", "main_stream": "rtsp://10.0.0.5/main"},
            "SN2": {"state": "offline", "main_stream": "rtsp://10.0.0.6/main"},
            "SN3": {"state": "online", "main_stream": "rtsp://10.0.0.9:8554/main"},
            "SN4": {"state": "online", "main_stream": "rtsp://10.0.0.10/main"},
            "GATE": {"state": "online", "main_stream": "rtsp://10.0.0.7/inventory"},
        },
    )
    static = [
        StreamSpec(camera="GATE", url="rtsp://10.0.0.7/static"),
        StreamSpec(camera="YARD", url="rtsp://10.0.0.8/yard?channel=1"),
    ]
    spec = CamerasSpec(streams=static, secrets=str(secrets), discover_seconds=60)
    streams = cameras.live_streams(spec, state)
    assert sorted(streams) == ["GATE", "SN1", "SN3", "SN4", "YARD"]  # offline ones left out

    def user(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url)
        return unquote(parts.username or ""), unquote(parts.password or ""), redact(url)

    assert user(streams["GATE"]) == ("by-id", "p@ss/1", "rtsp://10.0.0.7/static")  # static wins
    assert user(streams["SN1"]) == ("by-serial", "s", "rtsp://10.0.0.5/main")
    assert user(streams["SN3"]) == ("by-port", SECRET, "rtsp://10.0.0.9:8554/main")
    # "*" is the default of the URLs pinned in the config, never of discovered cameras
    assert user(streams["YARD"]) == ("default", "d", "rtsp://10.0.0.8/yard?channel=1")
    assert streams["SN4"] == "rtsp://10.0.0.10/main"

    without_discovery = CamerasSpec(streams=static)
    assert cameras.live_streams(without_discovery, state) == {
        "GATE": "rtsp://10.0.0.7/static",
        "YARD": "rtsp://10.0.0.8/yard?channel=1",
    }  # no secrets file: no credentials; no discovery: the inventory is not read


def test_secrets_lookup_takes_the_first_key_it_has() -> None:
    entries = {"*": Credentials("default", "d"), "cam": Credentials("host", "h")}
    secrets = cameras.Secrets(entries)
    assert secrets.lookup(None, "", "SN1", "cam") == entries["cam"]
    assert secrets.lookup("SN1") is None  # "*" only for an address pinned in the config
    assert secrets.lookup("SN1", pinned=True) == entries["*"]
    assert cameras.Secrets({}).lookup("cam") is None
