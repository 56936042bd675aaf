"""A folder sweep run by a real `privmask run`: each file packaged once across a kill -9 and
a restart, the watermark after the packages, and a manual backfill through the daemon's
journal while it runs. One daemon, several checks: daemons are slow to start."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clips import write_clip
from harness import Daemon, eventually, run_cli

NOW = datetime.now(UTC)


def old_clip(folder: Path, when: datetime, camera: str, frames: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # as many frames as minutes past the hour: no two clips the same content (a duplicate
    # is recorded as such, and gets no package of its own)
    name = f"{camera}_{when:%Y%m%d_%H%M%S}.mp4"
    path = write_clip(folder / name, frames=frames or 5 + when.minute)
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # finished an hour ago
    return path


def covered(daemon: Daemon) -> datetime | None:
    status = run_cli(daemon.config, "sweep", "status").stdout
    shown = status.split("covered up to ")[1][:16]
    return None if shown.startswith("-") else datetime.fromisoformat(shown).replace(tzinfo=UTC)


def test_a_daemon_sweeps_each_file_once_across_a_kill_and_takes_a_backfill(
    tmp_path: Path, models_dir: Path
) -> None:
    archive = tmp_path / "archive"
    day = (NOW - timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    names = [
        old_clip(archive / "cam1", day + timedelta(minutes=15 * i), "cam1").stem for i in range(4)
    ]
    since = (NOW - timedelta(days=2)).isoformat()
    sweep = {"name": "archive", "schedule": "0 3 1 1 *", "lag": "1h", "since": since,
             "source": {"folder": str(archive)}}  # fmt: skip
    daemon = Daemon(tmp_path, models_dir, timezone="UTC", sweeps=[sweep]).start()
    daemon.wait_for("sweep_listed")  # the catch-up run at start: nothing waits for 3 a.m.
    daemon.wait_for("job_done")
    daemon.kill()  # mid-sweep: some chunks packaged, some queued or being redacted
    daemon.start()
    assert eventually(lambda: len(daemon.packages()) == 4, timeout=180)
    assert sorted(p.name[: len(names[0])] for p in daemon.packages()) == sorted(names)
    # the watermark follows the packages: past the last file, up to now less the lag
    assert eventually(lambda: (covered(daemon) or NOW) > day + timedelta(hours=2), timeout=30)
    assert list(archive.rglob("*.mp4"))  # the archive's files stay

    # a backfill of time before the sweep's start, while the daemon runs: through its journal
    early = old_clip(archive / "cam2", NOW - timedelta(days=3), "cam2", frames=3)
    start, end = (NOW - timedelta(days=4)).isoformat(), (NOW - timedelta(days=2)).isoformat()
    backfill = run_cli(daemon.config, "sweep", "run", "archive", "--from", start, "--to", end,
                       timeout=180)  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr
    assert "1 chunk(s): 1 packaged" in backfill.stdout
    assert any(p.name.startswith(early.stem) for p in daemon.packages())
    # a manual run over what is covered (as the second fire of a fall-back night)
    again = run_cli(daemon.config, "sweep", "run", "archive", timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(daemon.packages()) == 5
    assert daemon.stop() == 0
    assert daemon.leftovers() == []
