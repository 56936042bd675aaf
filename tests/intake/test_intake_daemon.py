"""Intake through a real `privmask run`: links planted by an inbox writer, empty exports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from privmask.adapters.models import sha256_of

from clips import write_clip
from harness import Daemon

pytestmark = pytest.mark.slow

SECRET = b"root:$6$not-for-your-eyes:19000:0:99999:7:::\n"


def test_links_in_the_inbox_are_logged_and_left(daemon: Daemon, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "shadow"
    secret.write_bytes(SECRET)
    elsewhere = write_clip(outside / "elsewhere.mp4", frames=12)
    daemon.start()
    (daemon.inbox / "x.mp4").symlink_to(secret)
    (daemon.inbox / "clip.mp4").symlink_to(elsewhere)
    good = write_clip(tmp_path / "good.mp4", frames=10)
    shutil.move(good, daemon.inbox / "good.mp4")
    daemon.wait_for("job_done")
    for name in ("x.mp4", "clip.mp4"):
        event = daemon.wait_for("inbox_entry_ignored", timeout=60, source=str(daemon.inbox / name))
        assert event["kind"] == "symbolic link"
    assert daemon.stop() == 0
    (package,) = daemon.packages()
    manifest = daemon.read(package)[1]
    assert manifest["input"]["sha256"] == sha256_of(daemon.inbox / "good.mp4")
    assert not [e for e in daemon.events if e["event"] in ("clip_rejected", "clip_queued")
                and "x.mp4" in json.dumps(e)]  # fmt: skip
    copies = [p for p in daemon.quarantine.rglob("*") if p.is_file()]
    assert copies == []
    assert (daemon.inbox / "x.mp4").is_symlink() and secret.read_bytes() == SECRET


def test_an_empty_export_is_quarantined_as_empty(daemon: Daemon) -> None:
    daemon.start()
    (daemon.inbox / "CAM01_20261126.mp4").touch()
    rejected = daemon.wait_for("clip_rejected", timeout=60)
    assert rejected["code"] == "empty"
    daemon.stop()
    (reason_file,) = daemon.quarantine.glob("*/reason.json")
    reason = json.loads(reason_file.read_text())
    assert reason["code"] == "empty" and "0 bytes" in reason["reason"]
    assert daemon.packages() == []
