"""Is a job still being worked on? Time limits, heartbeats, and workers that die with their
daemon.

A worker beats (`Heartbeat`, a thread) while it has a job, and tells the journal how long
the try may take once it knows the clip's duration (`time_limit`). The service asks
`overdue` of every claim: a worker that stopped beating (stuck holding the interpreter, or
stopped) or ran past its limit (stuck in a system call, which a Python thread cannot
interrupt) is killed, and its job goes back like any crash.

A worker must never outlive its daemon: it would go on with the old configuration and
password. `die_with_parent` asks Linux for SIGKILL when the daemon goes; `StopSignal` is a
pipe whose far end only the daemon holds, so it reads as closed both when the daemon asks
the workers to stop and when the daemon is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Literal

import structlog

from privmask.adapters.video import probe
from privmask.daemon.journal import JobStateError, Journal

log = structlog.get_logger("privmask.worker")

# How often a working worker says so. A beat is one small SQLite write.
HEARTBEAT_SECONDS = 5.0
# Silence this long means the worker is stuck: 24 missed beats, far beyond any pause of a
# busy host (a long native call that holds the interpreter, a slow fsync of the journal).
STALE_SECONDS = 120.0
# Every try gets at least this long (model loading, hashing a large clip on a slow share)...
FLOOR_SECONDS = 600.0
# ...plus this many seconds per second of video: CPU redaction runs near real time on a small
# host, and several workers share its cores. A try taking 20x real time is stuck, not slow.
SECONDS_PER_VIDEO_SECOND = 20.0

Overdue = Literal["no_heartbeat", "over_time"]


def time_limit(duration_seconds: float) -> float:
    """Seconds a try at a clip of this duration may take before it is judged hung."""
    return FLOOR_SECONDS + SECONDS_PER_VIDEO_SECOND * max(0.0, duration_seconds)


def clip_duration(clip: Path) -> float:
    """The clip's duration in seconds, for its time limit; 0 (the floor) when it cannot be
    probed: the try itself then fails quickly and says why."""
    try:
        return probe(clip).duration_s
    except Exception:  # whatever an untrusted file makes the demuxer raise
        return 0.0


def overdue(heartbeat: float | None, deadline: float | None, now: float) -> Overdue | None:
    """Why a claim's worker must be stopped now, or None while it counts as working."""
    if heartbeat is not None and now - heartbeat > STALE_SECONDS:
        return "no_heartbeat"
    if deadline is not None and now > deadline:
        return "over_time"
    return None


class Heartbeat:
    """While the `with` block runs, a thread says every `every` seconds that `worker` still
    holds the job. It stops by itself once the journal says the job was taken away."""

    def __init__(
        self, journal: Journal, job_id: int, worker: str, every: float = HEARTBEAT_SECONDS
    ) -> None:
        self._journal, self._job, self._worker, self._every = journal, job_id, worker, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self.lost = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self._every):
            try:
                self._journal.heartbeat(self._job, self._worker)
            except JobStateError:
                self.lost = True  # judged hung: the service is killing this worker
                log.warning("job_lost", job=self._job, worker=self._worker)
                return
            except Exception as exc:  # a locked or full journal: try again at the next beat
                log.warning("heartbeat_failed", job=self._job, error=str(exc))


class StopSignal:
    """The worker's end of the daemon's stop pipe. Unlike a multiprocessing Event, it has
    no lock that a worker killed at the wrong moment could leave held."""

    def __init__(self, reader: Connection) -> None:
        self._reader = reader

    def wait(self, timeout: float | None) -> bool:
        """True once the daemon asked to stop (or is gone); False after `timeout`."""
        return self._reader.poll(timeout)

    def is_set(self) -> bool:
        return self._reader.poll(0)


_PR_SET_PDEATHSIG = 1


def killed_with_parent() -> None:
    """Ask Linux for SIGKILL when the thread that started this process ends
    (PR_SET_PDEATHSIG); nothing where prctl is missing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def die_with_parent(parent: int, stop: StopSignal) -> None:
    """End this process when its daemon (`parent`) ends, however it ends.

    PR_SET_PDEATHSIG fires when the *thread* that started this process ends, not the whole
    process: the service starts workers from its main thread only, which lives as long as
    the daemon. A watching thread covers systems without prctl: the stop pipe reads as
    closed when the daemon is gone, and getppid() then soon no longer names it."""
    killed_with_parent()
    if os.getppid() != parent:  # it ended before the signal was asked for
        os._exit(1)

    def watch() -> None:
        stop.wait(None)  # closed: the daemon asks the workers to stop, or it is ending
        # an ending process closes its files before its children are given a new parent:
        # look until it is gone (an orderly stop ends this process first)
        while os.getppid() == parent:
            time.sleep(0.1)
        os._exit(1)  # an orphan: no clean-up is worth the old settings being used

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
