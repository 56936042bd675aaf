"""`privmask run` as a service: real folders, real watchdog events, real processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privmask.adapters.models import sha256_of

from clips import write_clip
from harness import PASSWORD, Daemon, eventually

pytestmark = pytest.mark.slow


def drop(clip: Path, inbox: Path, name: str, chunks: int = 1, pause: float = 0.0) -> Path:
    """Copy a clip into the inbox as an export tool would: maybe slowly, in chunks."""
    data = clip.read_bytes()
    target = inbox / name
    step = -(-len(data) // chunks)
    with target.open("wb") as out:
        for start in range(0, len(data), step):
            out.write(data[start : start + step])
            out.flush()
            time.sleep(pause)
    return target


def input_hashes(daemon: Daemon) -> list[str]:
    return sorted(daemon.read(p)[1]["input"]["sha256"] for p in daemon.packages())


def test_a_clip_dropped_slowly_becomes_one_encrypted_package(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=40)
    daemon.start()
    source = drop(clip, daemon.inbox, "CAM01_20261126.mp4", chunks=6, pause=0.3)
    done = daemon.wait_for("job_done")
    # it waited for the copy to finish: one job, started after the last chunk
    assert len([e for e in daemon.events if e["event"] == "clip_queued"]) == 1
    (package,) = daemon.packages()
    video, manifest = daemon.read(package)
    assert manifest["input"]["sha256"] == sha256_of(source)
    assert manifest["rule"] == "built-in-default"
    assert len(manifest["rule_set_sha256"]) == 64
    assert [m["name"] for m in manifest["models"]] == ["yunet", "yolox-nano"]
    assert "CAM01" not in json.dumps(manifest)  # no file names inside either
    assert done["package"] == package.name
    assert source.read_bytes() == clip.read_bytes()  # the source is untouched
    assert daemon.stop() == 0
    assert daemon.leftovers() == []


def test_ten_at_once_and_a_duplicate_under_another_name(daemon: Daemon, tmp_path: Path) -> None:
    clips = [write_clip(tmp_path / f"c{i}.mp4", frames=10 + i) for i in range(10)]
    daemon.start()
    for index, clip in enumerate(clips):
        shutil.copy(clip, daemon.inbox / f"export-{index}.mp4")
    shutil.copy(clips[3], daemon.inbox / "same-content-other-name.mp4")
    daemon.wait_for("job_done", count=10)
    daemon.wait_for("clip_duplicate")
    time.sleep(1.5)  # a scan later: still no second job for the duplicate
    assert input_hashes(daemon) == sorted(sha256_of(c) for c in clips)
    assert daemon.stop() == 0
    status = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "status", "--config", str(daemon.config)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "done: 10" in status.stdout and "duplicate: 1" in status.stdout


def test_garbage_is_quarantined_with_a_reason(daemon: Daemon, media_dir: Path) -> None:
    daemon.start()
    (daemon.inbox / "notes.mp4").write_text("this is not a video\n" * 100)
    shutil.copy(media_dir / "nvr" / "pavs_video1.psf", daemon.inbox / "dvr-backup.psf")
    daemon.wait_for("clip_rejected", count=2)
    reasons = sorted(
        json.loads(p.read_text())["code"] for p in daemon.quarantine.glob("*/reason.json")
    )
    assert len(reasons) == 2 and all(reasons)
    copies = sorted(p.name for p in daemon.quarantine.glob("*/*") if p.name != "reason.json")
    assert copies == ["dvr-backup.psf", "notes.mp4"]
    assert (daemon.inbox / "notes.mp4").exists()  # sources are never moved or deleted
    assert daemon.packages() == []
    daemon.stop()


def test_files_dropped_while_down_are_taken_at_start_and_polling_works(
    tmp_path: Path, models_dir: Path
) -> None:
    service = Daemon(
        tmp_path, models_dir, inboxes=[{"path": str(tmp_path / "inbox"), "poll": True}]
    )
    (tmp_path / "inbox").mkdir(exist_ok=True)
    write_clip(tmp_path / "inbox" / "before.mp4", frames=12)
    try:
        service.start()
        service.wait_for("job_done")
        write_clip(tmp_path / "late.mp4", frames=14)
        shutil.move(tmp_path / "late.mp4", service.inbox / "late.mp4")
        service.wait_for("job_done", count=2)
        assert len(service.packages()) == 2
    finally:
        service.stop()


def test_temporary_names_are_ignored_until_renamed(daemon: Daemon, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    daemon.start()
    partial = daemon.inbox / "clip.mp4.part"
    shutil.copy(clip, partial)
    time.sleep(2.5)  # quiet window and a scan: a .part file is never taken
    assert not [e for e in daemon.events if e["event"] == "clip_queued"]
    partial.rename(daemon.inbox / "clip.mp4")
    daemon.wait_for("job_done")
    daemon.stop()


@pytest.mark.parametrize("moment", ["job_started", "clip_queued"])
def test_kill_9_then_restart_gives_exactly_one_package(
    daemon: Daemon, tmp_path: Path, moment: str
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=120, size=(640, 360))
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for(moment)
    daemon.kill()
    assert daemon.packages() == []
    daemon.start()
    daemon.wait_for("job_done")
    time.sleep(1.5)
    assert input_hashes(daemon) == [sha256_of(clip)]
    daemon.stop()
    assert daemon.leftovers() == []
    assert not list((daemon.state / "work").iterdir())


def test_a_package_published_just_before_a_crash_is_not_made_again(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("job_done")
    daemon.kill()
    # a crash between publishing and recording: the journal still says "processing"
    import sqlite3

    with sqlite3.connect(daemon.state / "journal.sqlite") as db:
        db.execute("UPDATE jobs SET state = 'processing' WHERE state = 'done'")
    (package,) = daemon.packages()
    before = package.stat().st_mtime_ns
    daemon.start()
    daemon.wait_for("job_found_published")
    daemon.stop()
    assert daemon.packages() == [package] and package.stat().st_mtime_ns == before


def test_an_unreachable_outbox_delays_jobs_and_loses_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    daemon.start()
    daemon.outbox.rmdir()
    daemon.outbox.write_text("the share is not mounted")  # what a vanished mount looks like
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("clip_queued")
    daemon.wait_for("storage_waiting")
    daemon.outbox.unlink()
    daemon.outbox.mkdir()
    done = daemon.wait_for("job_done")
    assert done["attempt"] == 1  # waiting for the share used up no try
    assert len(daemon.packages()) == 1
    daemon.stop()


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_configuration_mistakes_are_one_clear_error(tmp_path: Path, models_dir: Path) -> None:
    nested = run_once(Daemon(tmp_path, models_dir, outbox=str(tmp_path / "inbox" / "out")).config)
    assert nested.returncode == 1 and "must not contain each other" in nested.stderr
    missing = run_once(Daemon(tmp_path, models_dir, outbox=str(tmp_path / "unmounted")).config)
    assert missing.returncode == 1 and "is the share mounted?" in missing.stderr
    assert not (tmp_path / "unmounted").exists()
    infinite = run_once(Daemon(tmp_path, models_dir, limits={"max_gigabytes": float("inf")}).config)
    assert infinite.returncode == 1 and "limits.max_gigabytes" in infinite.stderr
    for result in (nested, missing, infinite):
        assert "Traceback" not in result.stderr


def test_a_missing_password_file_is_one_clear_error(tmp_path: Path, models_dir: Path) -> None:
    service = Daemon(tmp_path, models_dir)
    result = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "run", "--config", str(service.config),
         "--password-file", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "nope" in result.stderr and "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr


def test_a_worker_killed_mid_job_is_replaced_and_the_job_done_once(
    daemon: Daemon, tmp_path: Path
) -> None:
    import os
    import signal

    clip = write_clip(tmp_path / "clip.mp4", frames=150, size=(640, 360))
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    started = daemon.wait_for("job_started")
    os.kill(int(started["worker"].split(":")[1]), signal.SIGKILL)
    daemon.wait_for("worker_died")
    daemon.wait_for("job_done")
    assert input_hashes(daemon) == [sha256_of(clip)]
    assert daemon.stop() == 0


def test_rules_pick_destination_name_and_password_per_camera(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n"
        "  - {name: default, targets: {face: {}}}\n"
        "  - name: cam7\n    match: {cameras: [CAM-7]}\n    targets: {face: {}, person: {}}\n"
        f"    output: {{destination: {tmp_path / 'police'}, name: 'case_{{camera}}_{{id}}',"
        " password: {env: PM_TEST_CAM7_PASSWORD}}\n"
    )
    monkeypatch.setenv("PM_TEST_CAM7_PASSWORD", "another secret")
    (tmp_path / "police").mkdir()  # a share the daemon does not create: it must be mounted
    inbox = tmp_path / "inbox"
    service = Daemon(tmp_path, models_dir, inboxes=[{"path": str(inbox), "camera": "CAM-7"}],
                     rules=str(rules))  # fmt: skip
    try:
        service.start()
        write_clip(tmp_path / "clip.mp4", frames=12)
        shutil.move(tmp_path / "clip.mp4", inbox / "clip.mp4")
        service.wait_for("job_done")
    finally:
        service.stop()
    (package,) = (tmp_path / "police").glob("*.zip")
    assert package.name == "case_CAM-7_000001.zip"
    _, manifest = service.read(package, "another secret")
    assert manifest["rule"] == "cam7" and manifest["camera"] == "CAM-7"
    assert service.packages() == []


def test_done_marker_mode_waits_for_the_marker(tmp_path: Path, models_dir: Path) -> None:
    service = Daemon(tmp_path, models_dir, done_marker=True)
    try:
        service.start()
        write_clip(service.inbox / "clip.mp4", frames=12)
        time.sleep(2.5)  # complete and quiet, but no marker yet
        assert not [e for e in service.events if e["event"] == "clip_queued"]
        (service.inbox / "clip.mp4.done").touch()
        service.wait_for("job_done")
        time.sleep(1.5)
        assert not [e for e in service.events if e["event"] == "clip_rejected"]  # nor the marker
    finally:
        service.stop()
    assert len(service.packages()) == 1


def test_sigterm_mid_job_stops_cleanly_and_the_job_is_done_after_restart(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=150, size=(640, 360))
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("job_started")
    assert daemon.stop() == 0  # the job finished within the deadline, or was put back
    assert daemon.leftovers() == []
    daemon.start()
    assert eventually(lambda: len(daemon.packages()) == 1, timeout=120)
    time.sleep(1.5)
    assert input_hashes(daemon) == [sha256_of(clip)]
    daemon.stop()
