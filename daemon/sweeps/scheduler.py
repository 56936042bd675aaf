"""When sweeps run: APScheduler 3.x cron triggers on the site's clock, rebuilt from the
config at every start.

- Jobs live in the memory job store, with fixed ids (`sweep:NAME`): nothing is pickled,
  a changed config is simply the new schedule.
- `coalesce`: runs missed while busy collapse into one; `max_instances=1`: a fire while the
  sweep still runs is skipped (the next run starts from the watermark, so nothing is lost);
  `misfire_grace_time=None`: a late run still runs (the default of 1 s drops it silently).
- At start, one catch-up run per sweep covers what was missed while the daemon was down
  (the memory store does not know of missed runs).
- A source that cannot answer is tried again with backoff (30 s doubling to an hour) by a
  one-off job (`sweep:NAME:retry`); its cron runs go on meanwhile.
- DST: cron times are site wall-clock times. On the spring-forward night a time that does
  not exist (02:30 in Europe/Berlin) fires once, an hour later by the clock (03:30 CEST);
  on the fall-back night a time that happens twice fires twice, and the second run finds
  nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from privmask.daemon.sweeps.settings import SweepSpec, cron_trigger

log = structlog.get_logger("privmask.sweeps")

FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
_OPTIONS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def backoff(failures: int) -> timedelta:
    """The wait after the `failures`-th error in a row: 30 s, doubling, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(0, min(failures - 1, 16)), LAST_RETRY)


def job_id(name: str) -> str:
    return f"sweep:{name}"


class SweepScheduler:
    """The sweeps' schedule. `run(name)` does one run and returns the failures in a row of
    its source (0: it answered), which sets the retry."""

    def __init__(
        self, sweeps: tuple[SweepSpec, ...], zone: tzinfo, run: Callable[[str], int]
    ) -> None:
        self.sweeps, self.zone, self._run = sweeps, zone, run
        self._scheduler = BackgroundScheduler(timezone=zone, job_defaults=_OPTIONS)

    def start(self, *, catch_up: bool = True) -> SweepScheduler:
        now = datetime.now(UTC)
        for sweep in self.sweeps:
            self._scheduler.add_job(
                self._fire,
                cron_trigger(sweep.schedule, self.zone),
                args=[sweep.name],
                id=job_id(sweep.name),
                name=sweep.name,
                replace_existing=True,
                next_run_time=now if catch_up else None,
                **_OPTIONS,
            )
            if not catch_up:  # added paused above: resume computes the cron's next time
                self._scheduler.resume_job(job_id(sweep.name))
        self._scheduler.start()
        return self

    def stop(self) -> None:
        """Stop firing; a run under way is waited for (it ends at its next chunk)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def next_run(self, name: str) -> datetime | None:
        """The sweep's next run (a retry, if sooner than its cron)."""
        times = [
            job.next_run_time
            for job in (self._scheduler.get_job(i) for i in (job_id(name), job_id(name) + ":retry"))
            if job is not None and job.next_run_time is not None
        ]
        return min(times) if times else None

    def _fire(self, name: str) -> None:
        try:
            failures = self._run(name)
        except Exception as exc:  # a bug must not stop the schedule: one event, next fire
            log.error("sweep_crashed", sweep=name, error=f"{type(exc).__name__}: {exc}")
            return
        if failures:
            when = datetime.now(UTC) + backoff(failures)
            self._scheduler.add_job(
                self._fire,
                "date",
                run_date=when,
                args=[name],
                id=job_id(name) + ":retry",
                replace_existing=True,
                **_OPTIONS,
            )
            log.info("sweep_retry", sweep=name, at=when.isoformat(), failures=failures)


def next_fire(sweep: SweepSpec, zone: tzinfo, after: datetime) -> datetime | None:
    """When the sweep's cron fires next after `after` (for `sweep list` without a daemon)."""
    return cron_trigger(sweep.schedule, zone).get_next_fire_time(None, after)
