"""The inventory over rounds against a real ipycam: added, offline, back online, changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from camera_netns import scenario

from privmask.daemon import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return scenario("inventory", tmp_path_factory.mktemp("inventory"))


def _events(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e["camera"]) for e in events]


def test_rounds_give_added_then_nothing_then_offline_then_online(rounds: dict[str, Any]) -> None:
    added, same, gone, back = rounds["rounds"]
    assert _events(added) == [("camera_added", "PY-INV")]
    assert same == []
    assert _events(gone) == [("camera_offline", "PY-INV")]
    assert ("camera_online", "PY-INV") in _events(back)
    changed = [e for e in back if e["event"] == "camera_changed"]
    assert len(changed) == 1 and "firmware" in changed[0]["detail"].split(",")


def test_each_change_is_one_structlog_event(rounds: dict[str, Any]) -> None:
    names = [entry["event"] for entry in rounds["logs"]]
    assert names == ["camera_added", "camera_offline", "camera_online", "camera_changed"]
    assert all(entry["camera"] == "PY-INV" for entry in rounds["logs"])


def test_inventory_keeps_first_seen_and_tracks_state(rounds: dict[str, Any]) -> None:
    first = rounds["first"]["cameras"]["PY-INV"]
    offline = rounds["offline"]["cameras"]["PY-INV"]
    back = rounds["back"]["cameras"]["PY-INV"]
    assert (first["state"], offline["state"], back["state"]) == ("online", "offline", "online")
    assert first["first_seen"] == offline["first_seen"] == back["first_seen"]
    assert offline["last_seen"] == first["last_seen"]
    assert back["last_seen"] >= first["last_seen"]
    assert (first["firmware"], back["firmware"]) == ("1.0", "2.0")


def test_cameras_list_prints_the_inventory(
    rounds: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    state = Path(rounds["state"])
    assert cli.main(["cameras", "list", "--state", str(state), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["cameras"]
    assert [(r["id"], r["state"]) for r in rows] == [("PY-INV", "online")]
    assert cli.main(["cameras", "list", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "PY-INV" in out and "rtsp://127.0.0.1:8090/video_main" in out


def test_the_daemon_keeps_the_inventory(tmp_path: Path) -> None:
    seen = scenario("daemon", tmp_path)
    assert "started" in seen["events"] and "camera_added" in seen["events"]
    assert seen["code"] == 0
    assert "PY-DAEMON" in seen["list"]
