"""Intake: a file's way from announced to queued (or quarantined).

announce -> stable -> identity -> hash -> validate -> enqueue, or quarantine with a reason.

Recorders, VMS exports and file copies over SMB write a clip over seconds or minutes, often
under a temporary name that is renamed at the end, sometimes in place with no sign of when
they are done. A file is only taken once its name is final and its size, mtime and inode
have stayed the same for a quiet window (or, in marker mode, once `clip.mp4.done` exists).
`is_stable` and `done_marker_ready` are pure decisions; `StabilityTracker` stat()s; `Intake`
runs the whole way on the service's main thread, fed by the folder watchers' threads.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from privmask.adapters.models import sha256_of
from privmask.adapters.validate import Limits, ValidationError, validate

# the temporary-name rule is shared with the folder watcher, which is the lower layer
from privmask.adapters.watch import TEMP_PATTERNS, FolderWatcher, is_temporary, needs_polling
from privmask.daemon.config import Config
from privmask.daemon.journal import FileIdentity, Journal

log = structlog.get_logger("privmask.intake")

__all__ = [
    "TEMP_PATTERNS",
    "Intake",
    "Observation",
    "StabilityTracker",
    "done_marker_ready",
    "is_stable",
    "is_temporary",
    "observe_file",
]


@dataclass(frozen=True)
class Observation:
    """One stat() of a candidate file; `at` is on the tracker's (monotonic) clock."""

    identity: FileIdentity  # what must not change while a file is quiet
    at: float

    @property
    def size(self) -> int:
        return self.identity.size


def is_stable(history: Sequence[Observation], quiet_seconds: float, now: float) -> bool:
    """True when the file is non-empty and its size, mtime and inode have not changed for at
    least `quiet_seconds`, counted from the earliest observation of the current identity
    (the unbroken run at the end of `history`, which is in time order) to `now`.

    At least two looks at the current identity are required: a single stat() says nothing
    about whether the file changed afterwards.
    """
    if not history:
        return False
    latest = history[-1]
    if latest.size <= 0:
        return False
    run_start, looks = latest, 0
    for observation in reversed(history):
        if observation.identity != latest.identity:
            break
        run_start, looks = observation, looks + 1
    return looks >= 2 and now - run_start.at >= quiet_seconds


def observe_file(path: Path, at: float) -> Observation | None:
    """stat() `path`; None when it is gone, unreadable, or not a regular file."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return Observation(identity_of(path, info), at=at)


def identity_of(path: Path, info: os.stat_result) -> FileIdentity:
    return FileIdentity(str(path), info.st_size, info.st_mtime_ns, info.st_ino)


class StabilityTracker:
    """Per-path observation history; a path becomes ready once it has been quiet.

    The daemon calls `observe(path)` for every watcher event and every scan hit, and
    `ready()` on each scan tick. Only the current identity's run is kept per path, so the
    memory used does not grow with the number of events.
    """

    def __init__(self, quiet_seconds: float, clock: Callable[[], float] = time.monotonic):
        if quiet_seconds < 0:
            raise ValueError(f"quiet_seconds must be >= 0, got {quiet_seconds}")
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._history: dict[Path, list[Observation]] = {}

    def __contains__(self, path: object) -> bool:
        return path in self._history

    def __len__(self) -> int:
        return len(self._history)

    def observe(self, path: Path) -> None:
        """Record one stat() of `path`; forget it if it vanished or is not a regular file."""
        if is_temporary(path.name):
            return
        observation = observe_file(path, self._clock())
        if observation is None:
            self.forget(path)
            return
        history = self._history.setdefault(path, [])
        if history and history[-1].identity != observation.identity:
            history.clear()  # the file changed: the quiet window starts again
        # the run's first and latest looks are all that is_stable needs
        if len(history) >= 2:
            history[-1] = observation
        else:
            history.append(observation)

    def ready(self) -> list[Path]:
        """Paths that are stable now, removed from tracking. Each tracked path is looked at
        once more first, so that a change since the last event is never missed."""
        found = []
        for path in list(self._history):
            self.observe(path)
            history = self._history.get(path)
            if history and is_stable(history, self.quiet_seconds, self._clock()):
                found.append(path)
                del self._history[path]
        return sorted(found)

    def forget(self, path: Path) -> None:
        self._history.pop(path, None)


def done_marker_ready(path: Path, marker_suffix: str = ".done") -> bool:
    """Marker mode: `clip.mp4` is ready when `clip.mp4.done` exists beside it (writers that
    create the marker after closing the clip need no quiet window)."""
    if not marker_suffix:
        raise ValueError("marker_suffix must not be empty")
    marker = path.with_name(path.name + marker_suffix)
    return os.path.isfile(path) and os.path.exists(marker)


Quarantine = Callable[[str, int, str, str], None]  # (source, job id, code, reason)


class Intake:
    """The inboxes' watchers, the stability tracker, and the taking of complete files."""

    def __init__(self, config: Config, journal: Journal, quarantine: Quarantine) -> None:
        self.config, self.journal, self._quarantine = config, journal, quarantine
        self.quiet_seconds = max(
            config.network_quiet_seconds if needs_polling(i.path, i.poll) else config.quiet_seconds
            for i in config.inboxes
        )
        self.tracker = StabilityTracker(self.quiet_seconds)
        self.watchers = [
            FolderWatcher([inbox.path], self.announce, poll=inbox.poll) for inbox in config.inboxes
        ]
        self.cameras = {inbox.path: inbox.camera for inbox in config.inboxes}
        limits = config.limits
        self.limits = Limits(
            max_bytes=int(limits.max_gigabytes * (1 << 30)),
            max_seconds=limits.max_hours * 3600,
            max_width=limits.max_width,
            max_height=limits.max_height,
        )
        self._announced: list[Path] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()

    def announce(self, path: Path) -> None:
        """A watcher saw `path` change (called from the watchers' threads)."""
        with self._lock:
            self._announced.append(path)

    def reconcile(self) -> None:
        """The full scan: catches what events missed and what arrived while we were down."""
        for watcher in self.watchers:
            for root, status in watcher.root_status().items():
                if status != "ok":
                    log.warning("inbox_paused", inbox=str(root), status=status)
            for path in watcher.scan():
                try:
                    info = path.stat()
                except OSError:
                    continue
                if not self.journal.seen(identity_of(path, info)):
                    self.announce(path)

    def tick(self) -> None:
        """Look at what was announced; take every file that has become complete."""
        with self._lock:
            announced, self._announced = self._announced, []
        for path in announced:
            self.tracker.observe(path)
        for path in self.tracker.ready():
            if self.config.done_marker and not done_marker_ready(path):
                continue
            try:
                self.take(path)
            except Exception as exc:  # one bad file must not stop the service
                log.error("intake_failed", source=str(path), error=str(exc))

    def take(self, path: Path) -> None:
        """A complete file: hash, validate and queue it, or quarantine it."""
        if is_temporary(path.name) or (self.config.done_marker and path.suffix == ".done"):
            return  # markers say another file is ready; they are not clips
        try:
            identity = identity_of(path, path.stat())
        except OSError:
            return  # gone again
        if self.journal.seen(identity):
            return
        inbox = next((root for root in self.cameras if root in path.parents), path.parent)
        try:
            digest = sha256_of(path)
            after = identity_of(path, path.stat())
        except OSError as exc:  # unreadable or gone: looked at again on the next scan
            log.warning("clip_unreadable", source=str(path), error=exc.strerror)
            return
        if after != identity:
            self.tracker.observe(path)  # it changed while we read it: not complete after all
            return
        folder = str(path.parent)
        try:
            validate(path, self.limits)
        except ValidationError as exc:
            rejection = exc.rejection
            job = self.journal.quarantine_file(identity, digest, folder, rejection.reason)
            self._quarantine(str(path), job.id, rejection.code, rejection.reason)
            log.warning("clip_rejected", job=job.id, code=rejection.code, reason=rejection.reason)
            return
        job, created = self.journal.enqueue(identity, digest, folder, self.cameras.get(inbox))
        if created:
            log.info("clip_queued", job=job.id, source=str(path), bytes=identity.size)
        else:
            log.info("clip_duplicate", source=str(path), sha256=digest[:16])
