"""Sweep schedules: cron on the site's clock across DST, APScheduler's job options, the
catch-up run at start, backoff, and a bad cron refused at config load with file and line."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from privmask.daemon.config import ConfigError, load_config
from privmask.daemon.journal import Journal
from privmask.daemon.sweeps.runner import SweepRunner
from privmask.daemon.sweeps.scheduler import SweepScheduler, backoff, job_id
from privmask.daemon.sweeps.settings import SweepSpec, cron_trigger

from clips import write_clip

BERLIN = ZoneInfo("Europe/Berlin")


def fires(expression: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end), stepped in UTC (wall-clock steps loop at a fold)."""
    trigger, found = cron_trigger(expression, BERLIN), []
    now = start
    while (fire := trigger.get_next_fire_time(None, now)) is not None and fire < end:
        found.append(fire.astimezone(UTC))
        now = fire.astimezone(UTC) + timedelta(seconds=1)
    return found


def test_the_spring_forward_night_fires_once_at_0330_summer_time() -> None:
    night = fires(
        "30 2 * * *",
        datetime(2026, 3, 28, 12, tzinfo=UTC),
        datetime(2026, 3, 30, 12, tzinfo=UTC),
    )
    assert night == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 CEST: 02:30 did not exist
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST the next night
    ]
    assert night[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"


def test_the_fall_back_night_fires_twice() -> None:
    night = fires(
        "30 2 * * *",
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        datetime(2026, 10, 25, 12, tzinfo=UTC),
    )
    assert night == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET, the hour again
    ]


def sweep(name: str = "archive", schedule: str = "30 2 * * *") -> SweepSpec:
    return SweepSpec.model_validate(
        {"name": name, "schedule": schedule, "source": {"folder": "/srv/archive"}}
    )


def test_jobs_are_rebuilt_with_fixed_ids_and_safe_options_and_catch_up_once() -> None:
    ran: list[str] = []
    done = threading.Event()

    def run(name: str) -> int:
        ran.append(name)
        done.set()
        return 0

    scheduler = SweepScheduler((sweep(),), BERLIN, run).start()
    try:
        assert done.wait(30)
        job = scheduler._scheduler.get_job(job_id("archive"))
        assert job is not None
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
        after = datetime.now(UTC)
        next_run = scheduler.next_run("archive")
        assert next_run is not None and next_run > after
        assert next_run.astimezone(BERLIN).strftime("%M") == "30"
    finally:
        scheduler.stop()
    assert ran == ["archive"]  # the catch-up run, then the cron


def test_a_source_that_fails_is_retried_with_backoff() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]
    done = threading.Event()
    scheduler = SweepScheduler((sweep(),), BERLIN, lambda name: done.set() or 1)
    scheduler.start()
    try:
        assert done.wait(30)
        retry = scheduler._scheduler.get_job(job_id("archive") + ":retry")
        for _ in range(100):  # the retry job is added right after the run returns
            if retry is not None:
                break
            threading.Event().wait(0.05)
            retry = scheduler._scheduler.get_job(job_id("archive") + ":retry")
        assert retry is not None
        wait = scheduler.next_run("archive") - datetime.now(UTC)  # type: ignore[operator]
        assert timedelta(seconds=20) < wait <= timedelta(seconds=30)
    finally:
        scheduler.stop()


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("30 2 31 2 *", "cron '30 2 31 2 *' never fires"),
        ("61 2 * * *", "the last value (61) is higher than the maximum value (59)"),
        ("@daily", "Wrong number of fields"),
    ],
)
def test_a_bad_cron_is_refused_with_file_and_line(
    tmp_path: Path, schedule: str, message: str
) -> None:
    path = tmp_path / "privmask.yaml"
    path.write_text(
        "timezone: Europe/Berlin\n"
        "sweeps:\n"
        "  - name: archive\n"
        f"    schedule: '{schedule}'\n"
        "    source: {folder: /srv/archive}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}:4:5: error: sweeps.0.schedule: ")
    assert message in str(refused.value)


def test_a_bad_source_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "privmask.yaml"
    path.write_text(
        "sweeps:\n"
        "  - name: nvr\n"
        "    schedule: '0 * * * *'\n"
        "    source: {onvif: 'http://10.0.0.5/onvif/device_service', username: admin,\n"
        "             password: hunter2}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}:5:14: error: sweeps.0.source.password: ")
    assert "hunter2" not in str(refused.value)


def test_two_sweeps_cannot_share_a_name(tmp_path: Path) -> None:
    path = tmp_path / "privmask.yaml"
    one = "  - {name: a, schedule: '0 * * * *', source: {folder: /srv}}\n"
    path.write_text("sweeps:\n" + one + one)
    with pytest.raises(ConfigError, match="two sweeps are named 'a'"):
        load_config(path)


def test_the_second_fire_of_the_fall_back_night_makes_nothing_twice(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "cam1"
    archive.mkdir(parents=True)
    for name in ("cam1_20261024_210000.mp4", "cam1_20261025_015000.mp4"):  # Berlin time
        clip = write_clip(archive / name, frames=10)
        os.utime(clip, (time.time() - 3600, time.time() - 3600))  # finished writing
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "privmask.yaml"
    path.write_text(
        f"timezone: Europe/Berlin\nstate: {tmp_path / 'state'}\n"
        f"inboxes: [{tmp_path / 'inbox'}]\nquarantine: {tmp_path / 'quarantine'}\n"
        "sweeps:\n  - name: archive\n    schedule: '30 2 * * *'\n"
        f"    source: {{folder: {tmp_path / 'archive'}}}\n"
    )
    config = load_config(path)
    first, second = fires(
        "30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 12, tzinfo=UTC)
    )
    (tmp_path / "state").mkdir()
    with Journal(config.journal_path) as journal:
        runner = SweepRunner(config, journal)
        made = runner.run("archive", now=first)
        again = runner.run("archive", now=second)
        assert (made.queued, again.queued) == (2, 0)
        assert len(journal.chunks(config.sweeps[0].identity())) == 2
        assert len(journal.jobs()) == 2


def test_a_chunk_longer_than_six_hours_is_refused(tmp_path: Path) -> None:
    """A replayed chunk's MP4 times cannot span a hole of more than ~6.6 hours."""
    path = tmp_path / "privmask.yaml"
    path.write_text(
        "sweeps:\n"
        "  - name: archive\n"
        "    schedule: '30 2 * * *'\n"
        "    chunk_minutes: 1440\n"
        "    source: {folder: /srv/archive}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "sweeps.0.chunk_minutes" in str(refused.value)
    assert "360" in str(refused.value)
