"""Custody in the running daemon: each original escrowed to the custodians before its
package, opened with the standard `age` tool; quarantine copies sealed; `source: delete`
only once everything checks out; no package without its escrow copy, after a kill -9 or
while the store is gone; every step in the audit log, whose checkpoints `minisign` checks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from privmask.adapters.models import sha256_of

from clips import Custodian, write_clip
from harness import Daemon, run_cli

pytestmark = pytest.mark.slow

FACES_ONLY = "version: 1\nrules:\n  - name: site\n    targets: {{face: {{}}}}\n{extra}"


def custody_daemon(
    root: Path, models_dir: Path, custodians: dict[str, Custodian], **settings: Any
) -> Daemon:
    recipients = [custodians["age"].recipient, custodians["ssh"].recipient]
    return Daemon(root, models_dir, escrow={"recipients": recipients}, **settings)


def rules_folder(root: Path, extra: str = "") -> str:
    folder = root / "rules"
    folder.mkdir()
    (folder / "site.yaml").write_text(FACES_ONLY.format(extra=extra))
    return str(folder)


def age_open(sealed: Path, identity: Path) -> bytes:
    """Decrypt with the real `age` CLI, as a custodian would."""
    done = subprocess.run(
        ["age", "-d", "-i", str(identity), str(sealed)], capture_output=True, check=True
    )
    return done.stdout


def actions(daemon: Daemon) -> list[str]:
    return [entry["action"] for entry in daemon.audit()]


def test_each_original_is_escrowed_for_both_key_kinds_before_its_package(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    daemon = custody_daemon(tmp_path, models_dir, custodians)
    clip = write_clip(tmp_path / "clip.mp4")
    try:
        daemon.start()
        shutil.copy(clip, daemon.inbox / "CAM1_20261130.mp4")
        daemon.wait_for("job_done")
    finally:
        assert daemon.stop() == 0
    (package,) = daemon.packages()
    _, manifest = daemon.read(package)
    (sealed,) = daemon.escrow.iterdir()  # one copy, named by the job, nothing partial
    assert sealed.name == "000001.age"
    assert manifest["escrow"] == {
        "file": "000001.age",
        "sha256": sha256_of(sealed),
        "bytes": sealed.stat().st_size,
    }
    assert manifest["input"]["sha256"] == sha256_of(clip)
    for kind in ("age", "ssh"):
        assert age_open(sealed, custodians[kind].identity) == clip.read_bytes()
    events = [e["event"] for e in daemon.events]
    assert events.index("escrow_written") < events.index("job_done")
    # the audit log: key, rules, escrow, each once, in that order; its details match
    assert actions(daemon) == ["key_created", "rules_loaded", "escrow_written"]
    written = daemon.audit()[2]
    assert written["job"] == "000001"
    assert written["details"]["sha256"] == sha256_of(sealed)
    assert written["details"]["source_sha256"] == sha256_of(clip)
    # the checkpoint written at shutdown verifies with the real minisign and the site key
    (checkpoint,) = (daemon.state / "audit" / "checkpoints").glob("*.txt")
    checked = subprocess.run(
        ["minisign", "-Vm", str(checkpoint), "-P", daemon.site_key().base64],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_without_recipients_nothing_is_escrowed(tmp_path: Path, models_dir: Path) -> None:
    daemon = Daemon(tmp_path, models_dir)
    try:
        daemon.start()
        shutil.copy(write_clip(tmp_path / "clip.mp4"), daemon.inbox / "a.mp4")
        daemon.wait_for("job_done")
    finally:
        daemon.stop()
    (package,) = daemon.packages()
    assert daemon.read(package)[1]["escrow"] is None
    assert list(daemon.escrow.iterdir()) == []
    assert "escrow_written" not in actions(daemon)


def test_a_kill_between_escrow_and_publish_leaves_one_copy_and_one_package(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    daemon = custody_daemon(tmp_path, models_dir, custodians)
    # long enough that the redaction after the escrow step is still running at the kill
    # (seconds of work against the tenth of a second the kill takes to follow the event)
    clip = write_clip(tmp_path / "clip.mp4", frames=100, size=(640, 360))
    daemon.start()
    shutil.copy(clip, daemon.inbox / "a.mp4")
    daemon.wait_for("escrow_written")
    daemon.kill()
    assert daemon.packages() == []  # the kill came before the package
    assert [p.name for p in daemon.escrow.iterdir()] == ["000001.age"]
    try:
        daemon.start()
        daemon.wait_for("job_done", timeout=240)
    finally:
        assert daemon.stop() == 0
    (package,) = daemon.packages()
    assert daemon.leftovers() == []
    (sealed,) = daemon.escrow.iterdir()
    assert daemon.read(package)[1]["escrow"]["sha256"] == sha256_of(sealed)
    assert age_open(sealed, custodians["age"].identity) == clip.read_bytes()


def test_no_package_while_the_escrow_store_is_gone(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    daemon = custody_daemon(tmp_path, models_dir, custodians)
    try:
        daemon.start()
        daemon.escrow.rmdir()  # the share went away
        shutil.copy(write_clip(tmp_path / "clip.mp4"), daemon.inbox / "a.mp4")
        daemon.wait_for("clip_queued")
        daemon.wait_for("storage_waiting")
        time.sleep(2)
        assert daemon.packages() == []
        daemon.escrow.mkdir()  # mounted again: the job goes on, its copy first
        daemon.wait_for("job_done")
    finally:
        assert daemon.stop() == 0
    (package,) = daemon.packages()
    assert daemon.read(package)[1]["escrow"]["file"] == "000001.age"
    assert (daemon.escrow / "000001.age").is_file()


def test_source_delete_removes_the_inbox_file_once_package_and_copy_check_out(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    rules = rules_folder(tmp_path, "    source: delete\n")
    daemon = custody_daemon(tmp_path, models_dir, custodians, rules=rules)
    clip = write_clip(tmp_path / "clip.mp4")
    source = daemon.inbox / "a.mp4"
    try:
        daemon.start()
        shutil.copy(clip, source)
        daemon.wait_for("job_done")
        daemon.wait_for("source_deleted")
    finally:
        assert daemon.stop() == 0
    assert not source.exists()
    deleted = [e for e in daemon.audit() if e["action"] == "source_deleted"]
    assert [e["details"]["source_sha256"] for e in deleted] == [sha256_of(clip)]
    assert actions(daemon).index("escrow_written") < actions(daemon).index("source_deleted")
    assert age_open(daemon.escrow / "000001.age", custodians["ssh"].identity) == clip.read_bytes()


def test_source_delete_without_recipients_keeps_the_source(
    tmp_path: Path, models_dir: Path
) -> None:
    daemon = Daemon(tmp_path, models_dir, rules=rules_folder(tmp_path, "    source: delete\n"))
    source = daemon.inbox / "a.mp4"
    try:
        daemon.start()
        shutil.copy(write_clip(tmp_path / "clip.mp4"), source)
        kept = daemon.wait_for("source_kept")
    finally:
        daemon.stop()
    assert source.exists()
    assert "no escrow recipients" in kept["reason"]
    assert "source_deleted" not in actions(daemon)


def test_a_quarantine_copy_is_sealed_to_the_custodians(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    daemon = custody_daemon(tmp_path, models_dir, custodians)
    broken = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # not a video
    try:
        daemon.start()
        (daemon.inbox / "broken.mp4").write_bytes(broken)
        daemon.wait_for("clip_rejected")
    finally:
        daemon.stop()
    folder = daemon.quarantine / "000001"
    assert sorted(p.name for p in folder.iterdir()) == ["broken.mp4.age", "reason.json"]
    assert age_open(folder / "broken.mp4.age", custodians["age"].identity) == broken
    reason = json.loads((folder / "reason.json").read_text())  # plain, for a person to read
    assert reason["copy"] == "broken.mp4.age" and reason["job"] == 1


def test_unusable_site_recipients_refuse_the_start(tmp_path: Path, models_dir: Path) -> None:
    missing = tmp_path / "custodians.txt"
    daemon = Daemon(tmp_path, models_dir, escrow={"recipients": [str(missing)]})
    done = run_cli(daemon.config, "run")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("privmask: error: escrow.recipients: ") and str(missing) in line
