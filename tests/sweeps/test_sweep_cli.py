"""`privmask sweep list|run|status` as a user runs them, without a daemon: a real folder
archive, real clips, the real journal; each file packaged once however often it runs."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from isapi_peer import nvr_sweep, one_chunk_recorder

from clips import Custodian, write_clip
from harness import PASSWORD, privmask

NOW = datetime.now(UTC)


def old_clip(folder: Path, when: datetime, camera: str = "cam1") -> Path:
    """A finished recording named as recorders name them (site time: UTC here)."""
    folder.mkdir(parents=True, exist_ok=True)
    # as many frames as minutes past the hour: no two clips the same content (a duplicate
    # is recorded as such, and gets no package of its own)
    path = write_clip(folder / f"{camera}_{when:%Y%m%d_%H%M%S}.mp4", frames=5 + when.minute)
    past = time.time() - 3600
    os.utime(path, (past, past))  # written an hour ago: no longer growing
    return path


def site(tmp_path: Path, models_dir: Path, sweeps: list[dict[str, Any]], zone: str = "UTC") -> Path:
    for name in ("inbox", "outbox", "escrow"):
        (tmp_path / name).mkdir(exist_ok=True)
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    config = {
        "timezone": zone,
        "inboxes": [str(tmp_path / "inbox")],
        "outbox": str(tmp_path / "outbox"),
        "quarantine": str(tmp_path / "quarantine"),
        "state": str(tmp_path / "state"),
        "escrow": {"store": str(tmp_path / "escrow")},
        "models": str(models_dir),
        "password": {"file": str(password)},
        "sweeps": sweeps,
    }
    path = tmp_path / "privmask.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def folder_sweep(root: Path, **more: Any) -> dict[str, Any]:
    since = (NOW - timedelta(days=2)).isoformat()
    return {"name": "archive", "schedule": "30 2 * * *", "since": since,
            "source": {"folder": str(root)}, **more}  # fmt: skip


def test_a_sweep_run_packages_each_file_once_and_moves_the_watermark(
    tmp_path: Path, models_dir: Path
) -> None:
    archive = tmp_path / "archive"
    day = (NOW - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    for quarter in range(2):
        old_clip(archive / "cam1", day + timedelta(minutes=15 * quarter))
    config = site(tmp_path, models_dir, [folder_sweep(archive, lag="1h")])
    first = privmask("sweep", "run", "archive", "--config", config, models=models_dir)
    assert first.returncode == 0, first.stderr
    assert "archive: 2 chunk(s): 2 packaged" in first.stdout
    packages = sorted(p.name for p in (tmp_path / "outbox").glob("*.zip"))
    assert [p[:20] for p in packages] == [f"cam1_{day:%Y%m%d}_100000", f"cam1_{day:%Y%m%d}_101500"]
    assert all(archive.rglob("*.mp4"))  # a folder source's files are never deleted
    again = privmask("sweep", "run", "archive", "--config", config, models=models_dir)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 2  # nothing twice
    # a backfill over the same time finds every chunk made already
    start = (day - timedelta(hours=1)).isoformat()
    backfill = privmask("sweep", "run", "archive", "--from", start, "--config", config)
    assert backfill.returncode == 0, backfill.stderr
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 2
    status = privmask("sweep", "status", "--config", config)
    covered = datetime.strptime(status.stdout.split("covered up to ")[1][:16], "%Y-%m-%d %H:%M")
    assert covered.replace(tzinfo=UTC) > NOW - timedelta(hours=1, minutes=2)
    assert "last error -" in status.stdout


def test_a_file_named_by_the_sites_pattern_is_packaged_under_that_time(
    tmp_path: Path, models_dir: Path
) -> None:
    """The time the sweep took a file by is the time its package and rules use: one reading."""
    archive = tmp_path / "archive"
    when = (NOW - timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
    clip = archive / "lobby" / f"export {when:%Y-%m-%d %H.%M.%S}.mp4"  # no vendor's name
    clip.parent.mkdir(parents=True)
    write_clip(clip, frames=8)
    past = time.time() - 3600
    os.utime(clip, (past, past))
    pattern = r"(?P<start>\d{4}-\d\d-\d\d \d\d\.\d\d\.\d\d)"
    sweep = folder_sweep(archive, lag="1h")
    sweep["source"]["pattern"] = pattern
    config = site(tmp_path, models_dir, [sweep])
    done = privmask("sweep", "run", "archive", "--config", config, models=models_dir)
    assert done.returncode == 0, done.stderr
    [package] = (tmp_path / "outbox").glob("*.zip")
    assert package.name.startswith(f"lobby_{when:%Y%m%d_%H%M%S}"), package.name


def test_a_sweep_never_deletes_the_recorders_archive_even_under_a_delete_rule(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    """`source: delete` is for clips exported into an inbox; an NVR's archive is the NVR's."""
    archive = tmp_path / "archive"
    day = (NOW - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    clip = old_clip(archive / "cam1", day)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n  - name: all\n    targets: {face: {}}\n    source: delete\n"
    )
    config = site(tmp_path, models_dir, [folder_sweep(archive, lag="1h")])
    settings = yaml.safe_load(config.read_text())
    settings["rules"] = str(rules)
    settings["escrow"]["recipients"] = [custodians["age"].recipient]
    config.write_text(yaml.safe_dump(settings))
    done = privmask("sweep", "run", "archive", "--config", config, models=models_dir)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 1
    assert clip.is_file()


def test_a_swept_clip_held_for_review_ends_the_run_saying_so(
    tmp_path: Path, models_dir: Path
) -> None:
    """A person must decide before the package: the run hands the clip over and ends."""
    archive = tmp_path / "archive"
    day = (NOW - timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
    old_clip(archive / "cam1", day)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n  - name: all\n    targets: {face: {}}\n    review: required\n"
    )
    config = site(tmp_path, models_dir, [folder_sweep(archive, lag="1h")])
    settings = yaml.safe_load(config.read_text())
    settings["rules"] = str(rules)
    config.write_text(yaml.safe_dump(settings))
    done = privmask("sweep", "run", "archive", "--config", config, models=models_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 waiting for review" in done.stdout
    assert list((tmp_path / "outbox").glob("*.zip")) == []


def test_a_source_that_cannot_answer_is_one_line_and_the_watermark_waits(
    tmp_path: Path, models_dir: Path
) -> None:
    config = site(tmp_path, models_dir, [folder_sweep(tmp_path / "not-mounted")])
    failed = privmask("sweep", "run", "archive", "--config", config)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) >= 1 and "not-mounted" in lines[-1] and "Traceback" not in failed.stderr
    status = privmask("sweep", "status", "--config", config)
    assert "covered up to -" in status.stdout
    assert "not-mounted" in status.stdout.split("last error")[1]


def test_list_shows_sources_and_next_runs_but_never_a_secret(
    tmp_path: Path, models_dir: Path
) -> None:
    secret = tmp_path / "nvr-password"
    secret.write_text("s3cret-Pa55\n")
    secret.chmod(0o600)
    nvr = {"name": "nvr", "schedule": "0 * * * *",
           "source": {"onvif": "http://admin:s3cret-Pa55@10.0.0.9/onvif/device_service",
                      "username": "admin", "password": {"file": str(secret)}}}  # fmt: skip
    config = site(tmp_path, models_dir, [folder_sweep(tmp_path / "a"), nvr])
    shown = privmask("sweep", "list", "--config", config)
    assert shown.returncode == 0, shown.stderr
    assert "s3cret" not in shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("archive  schedule '30 2 * * *' (UTC)  folder ")
    assert "onvif http://" in lines[1] and "10.0.0.9" in lines[1]
    assert " next " in lines[1] and ":00 UTC" in lines[1]


def test_bad_sweeps_and_bad_arguments_exit_2(tmp_path: Path, models_dir: Path) -> None:
    config = site(tmp_path, models_dir, [folder_sweep(tmp_path / "a", schedule="30 2 31 2 *")])
    refused = privmask("sweep", "list", "--config", config)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"{config}:")
    assert "sweeps.0.schedule: cron '30 2 31 2 *' never fires" in refused.stderr
    config = site(tmp_path, models_dir, [folder_sweep(tmp_path / "a")])
    unknown = privmask("sweep", "run", "nightly", "--config", config)
    assert unknown.returncode == 2 and "no sweep named 'nightly'" in unknown.stderr
    wrong = privmask("sweep", "run", "archive", "--from", "yesterday", "--config", config)
    assert wrong.returncode == 2 and "--from 'yesterday' is not an ISO 8601 time" in wrong.stderr


def test_a_recorder_chunk_is_fetched_packaged_and_its_copy_deleted(
    tmp_path: Path, models_dir: Path
) -> None:
    # the recorder's clock (Berlin): 10:00 is 09:00 UTC
    recorder, secret = one_chunk_recorder(tmp_path)
    with recorder.running():
        nvr = nvr_sweep(recorder, secret)
        config = site(tmp_path, models_dir, [nvr], zone="Europe/Berlin")
        window = ("--from", "2026-03-01T10:00:00", "--to", "2026-03-01T10:02:00")
        swept = privmask("sweep", "run", "nvr", *window, "--config", config, models=models_dir)
        assert swept.returncode == 0, swept.stderr
        assert "nvr: 1 chunk(s): 1 packaged" in swept.stdout
        (package,) = (tmp_path / "outbox").glob("*.zip")
        assert "_20260301_100000_" in package.name  # the chunk's time, on the site clock
        assert list((tmp_path / "state" / "sweeps" / "nvr").iterdir()) == []  # copy deleted
        secret.write_text("wrong\n")
        refused = privmask("sweep", "run", "nvr", *window, "--config", config)
    assert refused.returncode == 1
    assert "s3cret-pass" not in refused.stdout + refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("privmask: error:")]
    assert "127.0.0.1" in line  # names the recorder


def test_two_sweeps_over_one_folder_take_each_file_once(tmp_path: Path, models_dir: Path) -> None:
    """A nightly and an hourly sweep of the same archive, one naming it through a link: the
    chunks are the folder's, not the sweep's, so the second sweep finds each file taken."""
    archive = tmp_path / "archive"
    day = (NOW - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    for quarter in range(2):
        old_clip(archive / "cam1", day + timedelta(minutes=15 * quarter))
    (tmp_path / "share").symlink_to(archive)  # the same share, mounted by another name
    nightly = folder_sweep(archive, lag="1h", name="nightly")
    hourly = folder_sweep(tmp_path / "share", lag="1h", name="hourly", schedule="0 * * * *")
    config = site(tmp_path, models_dir, [nightly, hourly])
    first = privmask("sweep", "run", "nightly", "--config", config, models=models_dir)
    assert first.returncode == 0, first.stderr
    second = privmask("sweep", "run", "hourly", "--config", config, models=models_dir)
    assert second.returncode == 0, second.stderr
    assert "hourly: 2 chunk(s): 2 packaged" in second.stdout  # made by the nightly sweep
    # nothing taken in again (neither queued nor found a duplicate of a packaged clip)
    assert "chunk_" not in second.stdout + second.stderr
    assert len(list((tmp_path / "outbox").glob("*.zip"))) == 2
    journal = tmp_path / "state" / "journal.sqlite"
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        (chunks,) = db.execute("SELECT count(*) FROM sweep_chunks").fetchone()
    assert chunks == 2  # one per file, not one per file and sweep
    status = privmask("sweep", "status", "--config", config).stdout
    assert "last error -" in status.splitlines()[1]
