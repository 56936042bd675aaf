"""Intake: a file's way from announced to queued (or quarantined).

announce -> stable -> open -> identity -> limits -> hash -> validate -> enqueue, or quarantine
with a reason.

Recorders, VMS exports and file copies over SMB write a clip over seconds or minutes, often
under a temporary name that is renamed at the end, sometimes in place with no sign of when
they are done. A file is only taken once its name is final and its size, mtime and inode
have stayed the same for a quiet window (or, in marker mode, once `clip.mp4.done` exists).
`is_stable` and `done_marker_ready` are pure decisions; `StabilityTracker` lstat()s; `Intake`
runs the whole way on the service's main thread, fed by the folder watchers' threads.

Whoever writes to an inbox is not trusted. Only a regular file inside the inbox is opened,
never through a link in any part of its path (`adapters.untrusted`); a link, a folder or a
pipe is logged once and left where it is. The descriptor opened is checked to be the file
whose quiet window was judged, and everything after (hash, validation, the quarantine copy)
reads that descriptor. Limits that need only the size are checked before any byte is read.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from privmask.adapters.untrusted import (
    NotRegularFile,
    entry_kind,
    open_regular,
    sha256_of_descriptor,
)
from privmask.adapters.validate import Rejection, ValidationError, check_size, validate

# the temporary-name rule is shared with the folder watcher, which is the lower layer
from privmask.adapters.watch import TEMP_PATTERNS, FolderWatcher, is_temporary, needs_polling
from privmask.daemon.config import Config
from privmask.daemon.journal import FileIdentity, Journal
from privmask.daemon.quarantine import quarantine
from privmask.daemon.recording import camera_from_name

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

_IGNORED_REMEMBERED = 10_000  # links and the like logged already; forgotten past this many


@dataclass(frozen=True)
class Observation:
    """One lstat() of a candidate file; `at` is on the tracker's (monotonic) clock."""

    identity: FileIdentity  # what must not change while a file is quiet
    at: float

    @property
    def size(self) -> int:
        return self.identity.size


def is_stable(history: Sequence[Observation], quiet_seconds: float, now: float) -> bool:
    """True when the file's size, mtime and inode have not changed for at least
    `quiet_seconds`, counted from the earliest observation of the current identity (the
    unbroken run at the end of `history`, which is in time order) to `now`.

    At least two looks at the current identity are required: a single stat() says nothing
    about whether the file changed afterwards.

    An empty file is stable by the same rule, and is then quarantined as `empty` (a failed
    export). Waiting longer would only delay that report: a writer that fills the file
    later gives it a new size and mtime, a new identity, taken in as a new file.
    """
    if not history:
        return False
    latest = history[-1]
    run_start, looks = latest, 0
    for observation in reversed(history):
        if observation.identity != latest.identity:
            break
        run_start, looks = observation, looks + 1
    return looks >= 2 and now - run_start.at >= quiet_seconds


def observe_file(path: Path, at: float) -> Observation | None:
    """lstat() `path`; None when it is gone, unreadable, or not a regular file (a link is
    not followed: it is a link, not a file)."""
    try:
        info = os.lstat(path)
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

    def observe(self, path: Path) -> str | None:
        """Record one lstat() of `path`; forget it if it vanished or is not a regular file.
        Returns what it is when it is there but is not a regular file ("symbolic link",
        "folder" ...), for the caller to say why it is left alone; else None."""
        if is_temporary(path.name):
            return None
        try:
            info = os.lstat(path)
        except OSError:
            self.forget(path)
            return None
        if not stat.S_ISREG(info.st_mode):
            self.forget(path)
            return entry_kind(info.st_mode)
        observation = Observation(identity_of(path, info), at=self._clock())
        history = self._history.setdefault(path, [])
        if history and history[-1].identity != observation.identity:
            history.clear()  # the file changed: the quiet window starts again
        # the run's first and latest looks are all that is_stable needs
        if len(history) >= 2:
            history[-1] = observation
        else:
            history.append(observation)
        return None

    def ready(self) -> list[FileIdentity]:
        """The files that are stable now, as judged (path, size, mtime, inode), removed from
        tracking. Each tracked path is looked at once more first, so that a change since the
        last event is never missed."""
        found = []
        for path in list(self._history):
            self.observe(path)
            history = self._history.get(path)
            if history and is_stable(history, self.quiet_seconds, self._clock()):
                found.append(history[-1].identity)
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


@dataclass(frozen=True)
class _Inbox:
    path: Path
    camera: str | None


class Intake:
    """The inboxes' watchers, the stability tracker, and the taking of complete files."""

    def __init__(self, config: Config, journal: Journal) -> None:
        # intake quarantines what it rejects itself, from the descriptor it judged
        self.config, self.journal = config, journal
        self.quiet_seconds = max(
            config.network_quiet_seconds if needs_polling(i.path, i.poll) else config.quiet_seconds
            for i in config.inboxes
        )
        self.tracker = StabilityTracker(self.quiet_seconds)
        self.watchers = [
            FolderWatcher([inbox.path], self.announce, poll=inbox.poll) for inbox in config.inboxes
        ]
        # deepest first: with nested inboxes, the most specific one says which camera
        self._inboxes = sorted(
            (_Inbox(Path(os.path.abspath(i.path)), i.camera) for i in config.inboxes),
            key=lambda inbox: len(inbox.path.parts),
            reverse=True,
        )
        self.limits = config.intake_limits
        self._announced: list[Path] = []
        self._ignored: dict[Path, tuple[int, int]] = {}  # logged already: (inode, mtime)
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
                    info = os.lstat(path)
                except OSError:
                    continue
                if not self.journal.seen(identity_of(path, info)):
                    self.announce(path)
            for path in watcher.left_alone():
                self._ignore_entry(path)

    def tick(self) -> None:
        """Look at what was announced; take every file that has become complete."""
        with self._lock:
            announced, self._announced = self._announced, []
        for path in announced:
            kind = self.tracker.observe(path)
            if kind is not None:
                self._ignore(path, kind)
        for judged in self.tracker.ready():
            if self.config.done_marker and not done_marker_ready(Path(judged.path)):
                continue
            try:
                self.take(judged)
            except Exception as exc:  # one bad file must not stop the service
                log.error("intake_failed", source=judged.path, error=str(exc))

    def _inbox_of(self, path: Path) -> _Inbox | None:
        """The most specific inbox that `path` is in."""
        return next((inbox for inbox in self._inboxes if inbox.path in path.parents), None)

    def take(self, judged: FileIdentity) -> None:
        """A file judged complete: hash, validate and queue it, or quarantine it."""
        path = Path(judged.path)
        if is_temporary(path.name) or (self.config.done_marker and path.suffix == ".done"):
            return  # markers say another file is ready; they are not clips
        inbox = self._inbox_of(path)
        if inbox is None or self.journal.seen(judged):
            return
        try:
            fd = open_regular(path, inbox.path)
        except NotRegularFile as exc:
            self._ignore(Path(exc.filename), exc.kind)
            return
        except FileNotFoundError:
            return  # gone again
        except OSError as exc:  # unreadable: looked at again on the next scan
            log.warning("clip_unreadable", source=str(path), error=exc.strerror)
            return
        try:
            self._take_open(path, fd, judged, inbox)
        finally:
            os.close(fd)

    def _take_open(self, path: Path, fd: int, judged: FileIdentity, inbox: _Inbox) -> None:
        info = os.fstat(fd)
        if identity_of(path, info) != judged:
            self.tracker.observe(path)  # another file under the name: its window starts now
            return
        try:
            check_size(path.name, info.st_size, self.limits)
        except ValidationError as exc:
            digest = sha256_of_descriptor(fd) if info.st_size == 0 else _unhashed(info)
            self._reject(path, fd, judged, inbox, digest, exc.rejection)
            return
        try:
            digest = sha256_of_descriptor(fd)
            after = identity_of(path, os.fstat(fd))
        except OSError as exc:  # a read error: looked at again on the next scan
            log.warning("clip_unreadable", source=str(path), error=exc.strerror)
            return
        if after != judged:
            self.tracker.observe(path)  # it changed while we read it: not complete after all
            return
        try:
            validate(path, self.limits, fd=fd)
        except ValidationError as exc:
            self._reject(path, fd, judged, inbox, digest, exc.rejection)
            return
        folder = str(path.parent)
        job, created = self.journal.enqueue(judged, digest, folder, _camera(path, inbox))
        if created:
            log.info("clip_queued", job=job.id, source=str(path), bytes=judged.size)
        else:
            log.info("clip_duplicate", source=str(path), sha256=digest[:16])

    def _reject(
        self,
        path: Path,
        fd: int,
        judged: FileIdentity,
        inbox: _Inbox,
        digest: str,
        rejection: Rejection,
    ) -> None:
        """Record the rejection, then copy the file judged (or, over the size limit, keep a
        reference to it) beside its reason. A failed copy is recorded in the journal all the
        same, and made again at the next start."""
        folder = str(path.parent)
        camera = _camera(path, inbox)
        job = self.journal.quarantine_file(judged, digest, folder, rejection.reason, camera)
        try:
            quarantine(
                path,
                self.config.quarantine,
                job.id,
                rejection.code,
                rejection.reason,
                fd=fd,
                max_copy_bytes=self.limits.max_bytes,
                group_readable=self.config.quarantine_group_readable,
                recipients=self.config.escrow_recipients,
            )
        except OSError as exc:
            log.error("quarantine_copy_failed", job=job.id, error=str(exc))
        log.warning("clip_rejected", job=job.id, code=rejection.code, reason=rejection.reason)

    def _ignore_entry(self, path: Path) -> None:
        with contextlib.suppress(OSError):  # gone: nothing to say
            self._ignore(path, entry_kind(os.lstat(path).st_mode))

    def _ignore(self, path: Path, kind: str) -> None:
        """Log, once for as long as it stays the same, an inbox entry that is left alone."""
        try:
            info = os.lstat(path)
            seen = (info.st_ino, info.st_mtime_ns)
        except OSError:
            seen = (0, 0)
        if self._ignored.get(path) == seen:
            return
        if len(self._ignored) >= _IGNORED_REMEMBERED:
            self._ignored.clear()
        self._ignored[path] = seen
        log.warning("inbox_entry_ignored", source=str(path), kind=kind)


def _camera(path: Path, inbox: _Inbox) -> str | None:
    """The inbox's camera, else one the vendor's export name gives (Hikvision, Dahua...)."""
    return inbox.camera or camera_from_name(path.relative_to(inbox.path))


def _unhashed(info: os.stat_result) -> str:
    """The journal's content key for a file that is never read (over the size limit): not
    a sha256, and one per file, so that two such files are never "duplicates"."""
    return f"unhashed:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
