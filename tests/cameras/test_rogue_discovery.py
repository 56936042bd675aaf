"""WS-Discovery with a rogue on the segment: real UDP multicast on loopback, in a namespace.

The rogue hears our probe and answers it three ways (no RelatesTo, someone else's probe, our
probe), each pointing at its own HTTP server, which asks for HTTP Digest and records every
request. Beside it: one ipycam named in the secrets file, and one that is not. The secrets
file also has a `"*"` entry with the site's usual password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from camera_netns import scenario

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-pass"


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return scenario("rogue", tmp_path_factory.mktemp("rogue"))


def _results(rogue: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Results by serial (described cameras) or endpoint (errors)."""
    return {r.get("serial") or r["endpoint"]: r for r in rogue["results"]}


def test_only_replies_to_our_probe_are_devices(rogue: dict[str, Any]) -> None:
    endpoints = rogue["endpoints"]
    assert "urn:uuid:rogue-unrelated" not in endpoints  # no RelatesTo at all
    assert "urn:uuid:rogue-wrong-probe" not in endpoints  # relates to another probe
    assert "urn:uuid:rogue-impostor" in endpoints  # it did answer ours: a device, unnamed
    assert len(endpoints) == 3  # the impostor and the two ipycams


def test_star_entry_sends_no_credentials_to_a_responder(rogue: dict[str, Any]) -> None:
    assert rogue["requests"], "the impostor was never asked anything"
    for request in rogue["requests"]:
        assert "UsernameToken" not in request["body"] and "Password" not in request["body"]
        assert "authorization" not in request["headers"].lower()


def test_a_camera_named_in_the_secrets_file_gets_its_credentials(rogue: dict[str, Any]) -> None:
    named = _results(rogue)["PY-NAMED"]
    assert named["type"] == "CameraInfo" and named["main_stream"].endswith("/video_main")


def test_unnamed_devices_are_told_why_they_got_no_credentials(rogue: dict[str, Any]) -> None:
    errors = [r for r in rogue["results"] if r["type"] == "CameraError"]
    by_port = {r["address"].split(":")[2].split("/")[0]: r for r in errors}
    assert set(by_port) == {"8280", "8380"}  # the unnamed ipycam and the impostor
    for error in by_port.values():
        assert error["kind"] == "unauthorized"
        assert "no entry in the secrets file names this camera" in error["message"]
    done = rogue["cli_json"]
    assert done["rc"] == 1 and "Traceback" not in done["stderr"]
    rows = json.loads(done["stdout"])["cameras"]
    assert sorted(r["state"] for r in rows) == ["error", "error", "online"]


def test_nothing_secret_in_the_scenario_output(rogue: dict[str, Any], tmp_path: Path) -> None:
    text = json.dumps({k: v for k, v in rogue.items() if k != "_stderr"})
    assert PASSWORD not in text
