"""Discovery and description against real ipycam devices on loopback, in a namespace.

One scenario run (three devices: open, right password, wrong password; plus a dead
address) serves every test in this file, so the peers start once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from camera_netns import scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return scenario("estate", tmp_path_factory.mktemp("estate"))


def _by_serial(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["serial"]: r for r in results if r["type"] == "CameraInfo"}


def test_probe_on_loopback_finds_every_device(estate: dict[str, Any]) -> None:
    ports = sorted(d["xaddrs"][0].split(":")[2].split("/")[0] for d in estate["devices"])
    assert ports == ["8080", "8180", "8280"]
    assert all(d["endpoint"].startswith("urn:uuid:") for d in estate["devices"])
    # the probe waits exactly its timeout, no longer
    assert estate["discover_seconds"] < 1.5


def test_describe_reads_identity_streams_and_snapshot(estate: dict[str, Any]) -> None:
    cams = _by_serial(estate["results"])
    open_cam = cams["PY-OPEN"]
    assert (open_cam["manufacturer"], open_cam["model"]) == ("PythonCam", "VirtualCam-1")
    assert open_cam["firmware"]
    assert open_cam["main_stream"] == "rtsp://127.0.0.1:8090/video_main"
    assert open_cam["sub_stream"] == "rtsp://127.0.0.1:8090/video_sub"
    assert open_cam["snapshot"] == "http://127.0.0.1:8080/snapshot.jpg"
    sizes = [(p["width"], p["height"]) for p in open_cam["profiles"]]
    assert sizes == [(1920, 1080), (640, 360)]


def test_ws_security_digest_with_the_right_password(estate: dict[str, Any]) -> None:
    # ipycam verifies the UsernameToken digest and refuses anything else
    assert _by_serial(estate["results"])["PY-AUTH"]["main_stream"].endswith("/video_main")


def test_wrong_password_is_reported_for_that_camera_only(estate: dict[str, Any]) -> None:
    errors = {r["address"]: r for r in estate["results"] if r["type"] == "CameraError"}
    wrong = errors["http://127.0.0.1:8280/onvif/device_service"]
    assert wrong["kind"] == "unauthorized"
    assert "wrong username or password" in wrong["message"]
    assert set(_by_serial(estate["results"])) == {"PY-OPEN", "PY-AUTH"}


def test_unreachable_address_is_a_clear_error(estate: dict[str, Any]) -> None:
    errors = {r["address"]: r for r in estate["results"] if r["type"] == "CameraError"}
    dead = errors["http://127.0.0.1:8999/onvif/device_service"]
    assert (dead["kind"], dead["message"]) == ("unreachable", "connection refused")


def test_cli_discover_json(estate: dict[str, Any]) -> None:
    done = estate["cli_json"]
    assert done["rc"] == 1, done["stderr"]  # one camera failed: scripts must notice
    rows = {row["id"]: row for row in json.loads(done["stdout"])["cameras"]}
    assert rows["PY-OPEN"]["state"] == "online"
    assert rows["PY-AUTH"]["sub_stream"] == "rtsp://127.0.0.1:8190/video_sub"
    wrong = [r for r in rows.values() if r["state"] == "error"]
    assert len(wrong) == 1 and wrong[0]["error_kind"] == "unauthorized"
    assert "Traceback" not in done["stderr"]


def test_cli_discover_text_never_prints_a_password(estate: dict[str, Any]) -> None:
    done = estate["cli_text"]
    assert "PY-OPEN" in done["stdout"] and "wrong username or password" in done["stdout"]
    for field in ("stdout", "stderr"):
        assert "s3cret-pass" not in done[field]
        assert "not-the-password" not in done[field]


def test_nothing_secret_in_the_scenario_output(estate: dict[str, Any], tmp_path: Path) -> None:
    text = json.dumps({k: v for k, v in estate.items() if k != "_stderr"})
    assert "s3cret-pass" not in text and "not-the-password" not in text
