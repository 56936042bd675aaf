"""The service under faults: a second daemon, a killed main process, dead and hung workers,
leftovers of a killed worker, state permissions, and errors in the JSON log."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from privmask.adapters.models import sha256_of
from privmask.daemon.service import SHUTDOWN_SECONDS

from clips import write_clip
from harness import Daemon, alive, eventually, run_cli, worker_pids

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path, models_dir: Path):  # type: ignore[no-untyped-def]
    service = Daemon(tmp_path, models_dir, workers=2)
    yield service
    if service.process is not None and service.process.poll() is None:
        service.kill()


def long_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", frames=150, size=(640, 360))


def input_hashes(daemon: Daemon) -> list[str]:
    return sorted(daemon.read(p)[1]["input"]["sha256"] for p in daemon.packages())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_daemon_on_the_same_state_folder_is_refused(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = long_clip(tmp_path)
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("job_started")
    second = run_cli(daemon.config, "run")
    assert second.returncode == 1
    assert len(second.stderr.splitlines()) == 1, second.stderr
    assert daemon.process is not None and f"pid {daemon.process.pid}" in second.stderr
    # readers still work while the daemon runs
    status = run_cli(daemon.config, "status")
    assert status.returncode == 0 and "done:" in status.stdout
    daemon.wait_for("job_done")  # the first daemon's job was left alone
    assert not [e for e in daemon.events if e["event"] == "job_put_back"]
    assert input_hashes(daemon) == [sha256_of(clip)]
    assert daemon.stop() == 0


def test_kill_9_of_the_main_process_takes_its_workers_with_it(
    daemon: Daemon, tmp_path: Path
) -> None:
    clip = long_clip(tmp_path)
    daemon.start()
    workers = worker_pids(daemon, 2)
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("job_started")
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)  # the main process only, not its group
    daemon.process.wait()
    assert eventually(lambda: not any(alive(pid) for pid in workers), timeout=30)
    assert daemon.packages() == []  # the orphan did not finish the job with the old settings
    daemon.start()
    daemon.wait_for("job_done")
    assert input_hashes(daemon) == [sha256_of(clip)]
    assert daemon.stop() == 0


def test_sigterm_after_an_idle_worker_was_killed_stops_within_the_deadline(
    daemon: Daemon,
) -> None:
    daemon.start()
    idle = worker_pids(daemon, 2)[0]
    os.kill(idle, signal.SIGKILL)
    daemon.wait_for("worker_died")
    worker_pids(daemon, 2)  # its replacement is up
    assert daemon.stop(timeout=SHUTDOWN_SECONDS + 20) == 0
    assert daemon.wait_for("stopped")


def hang(pid: int, journal: Path, change: str) -> None:
    """Stop a worker for good (a real hang: it neither works nor heartbeats), then make
    `change` to the journal. A worker stopped inside one of its short journal writes
    would keep the journal locked, so it is let go on a little and stopped again."""
    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        try:
            with contextlib.closing(sqlite3.connect(journal, timeout=0.5)) as db, db:
                db.execute(change)
            return
        except sqlite3.OperationalError:  # locked
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
    raise AssertionError("the worker always held the journal")


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("no_heartbeat", "UPDATE jobs SET heartbeat = heartbeat - 3600"),  # an hour passes
        ("over_time", "UPDATE jobs SET deadline = 1"),  # its time limit passed long ago
    ],
)
def test_a_hung_worker_is_killed_and_its_job_retried_as_a_crash(
    daemon: Daemon, tmp_path: Path, why: str, change: str
) -> None:
    clip = long_clip(tmp_path)
    daemon.start()
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    started = daemon.wait_for("job_started")
    assert started["time_limit"] >= 60  # from the clip's duration, with a floor
    hung = int(started["worker"].split(":")[1])
    hang(hung, daemon.state / "journal.sqlite", change)
    overdue = daemon.wait_for("job_overdue")
    assert (overdue["why"], overdue["job"]) == (why, started["job"])
    assert eventually(lambda: not alive(hung), timeout=30)
    done = daemon.wait_for("job_done")
    assert done["attempt"] == 2  # the hang counted as a crash: one try used
    assert input_hashes(daemon) == [sha256_of(clip)]
    assert daemon.stop() == 0


def test_a_partial_package_of_a_killed_worker_is_removed_when_its_job_is_reclaimed(
    tmp_path: Path, models_dir: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(
        "version: 1\nrules:\n  - {name: all, targets: {face: {}}, output: {name: 'case_{id}'}}\n"
    )
    service = Daemon(tmp_path, models_dir, rules=str(rules))
    try:
        service.start()
        shutil.copy(long_clip(tmp_path), service.inbox / "clip.mp4")
        started = service.wait_for("job_started")
        worker = int(started["worker"].split(":")[1])
        assert eventually(lambda: (service.state / "work" / "1").exists())  # it is redacting
        os.kill(worker, signal.SIGSTOP)
        # what the worker leaves when killed while writing its package
        partial = service.outbox / ".case_000001.0123456789ab.partial"
        partial.write_bytes(b"half a zip")
        os.kill(worker, signal.SIGKILL)
        service.wait_for("worker_died")
        service.wait_for("job_done")
        assert service.leftovers() == []  # gone while the daemon runs, not at the next start
        assert [p.name for p in service.packages()] == ["case_000001.zip"]
    finally:
        service.stop()


def test_the_state_folder_and_journal_are_private(tmp_path: Path, models_dir: Path) -> None:
    service = Daemon(tmp_path, models_dir)
    service.state.mkdir(mode=0o755)
    service.state.chmod(0o755)  # made by hand, or by an older privmask
    service.start()
    assert service.stop() == 0
    journal = service.state / "journal.sqlite"
    assert mode(service.state) == 0o700
    assert mode(journal) == 0o600
    journal.chmod(0o644)
    service.start()
    files = list(service.state.glob("journal.sqlite*"))
    assert files and all(mode(p) == 0o600 for p in files), [(p, oct(mode(p))) for p in files]
    assert service.stop() == 0
    assert mode(journal) == 0o600


def test_a_worker_crash_is_one_json_event(tmp_path: Path, models_dir: Path) -> None:
    service = Daemon(tmp_path, models_dir)
    try:
        service.start()
        worker = worker_pids(service, 1)[0]
        # the journal is replaced by something SQLite cannot open: the next worker crashes
        journal = service.state / "journal.sqlite"
        journal.rename(service.state / "moved.sqlite")
        journal.mkdir()
        os.kill(worker, signal.SIGKILL)
        crash = service.wait_for("worker_crashed")
        service.wait_for("worker_died", count=2)
    finally:
        service.kill()
    assert crash["error_type"] == "sqlite3.OperationalError" and crash["error"]
    others = [line for line in service.lines if not line.startswith("{")]
    assert others == []
    assert all(json.loads(line)["event"] for line in service.lines)
