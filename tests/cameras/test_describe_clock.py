"""Describing cameras whose clocks are hours off ours, against real ipycam devices.

A camera checks a WS-Security token's Created time against its own clock (ipycam within
5 minutes); cameras without NTP are commonly hours off. describe() reads the camera's
clock first and signs on it (`adapters.onvif_clock`), so the right password works
whatever the camera's clock says, and a wrong one is still refused as such.
"""

from __future__ import annotations

from typing import Any

import pytest
from camera_netns import scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return scenario("clock", tmp_path_factory.mktemp("clock"))["results"]


@pytest.mark.parametrize(("serial", "rtsp_port"), [("PY-AHEAD", 8090), ("PY-BEHIND", 8190)])
def test_a_camera_whose_clock_is_3_hours_off_is_described(
    described: dict[str, Any], serial: str, rtsp_port: int
) -> None:
    camera = described[serial]
    assert camera["type"] == "CameraInfo", camera.get("message")
    assert camera["serial"] == serial
    assert camera["main_stream"] == f"rtsp://127.0.0.1:{rtsp_port}/video_main"


def test_a_wrong_password_is_still_refused_as_such(described: dict[str, Any]) -> None:
    wrong = described["PY-WRONG"]
    assert (wrong["type"], wrong["kind"]) == ("CameraError", "unauthorized")
    assert "wrong username or password" in wrong["message"]
    assert "not-the-password" not in str(wrong)


def test_nothing_secret_in_the_results(described: dict[str, Any]) -> None:
    assert "s3cret-pass" not in str(described)
