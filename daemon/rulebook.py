"""The daemon's rules: one folder of rule files, loaded whole, reloaded when it changes.

A job takes `rulebook.current` once and keeps that `RuleSet` to the end, so it never sees a
half-loaded set; a reload builds a new set and swaps the reference. A change that makes the
folder invalid is logged with file, line and column, and the last good set stays in force.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from privmask.rules.files import Problem, RuleFileError
from privmask.rules.ruleset import RuleSet

log = structlog.get_logger("privmask.rules")


class RuleBook:
    def __init__(
        self, folder: Path, settle_seconds: float = 0.3, snapshots: Path | None = None
    ) -> None:
        """Load the folder now; raise RuleFileError if it is not a valid, non-empty set.

        With `snapshots`, every set in force is also written there (see `publish`), for
        worker processes to read.
        """
        self.folder = folder
        self.settle_seconds = settle_seconds  # editors save in bursts: wait for quiet
        self.snapshots = snapshots
        self._current = self._load()
        if snapshots is not None:
            publish(self._current, snapshots)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        log.info("rules_loaded", rule_set=self._current.digest, rules=len(self._current.rules))

    @property
    def current(self) -> RuleSet:
        return self._current

    def _load(self) -> RuleSet:
        ruleset = RuleSet.from_paths([self.folder])
        if not ruleset.rules:
            raise RuleFileError([Problem(str(self.folder), 1, 1, "the rules folder holds no rule")])
        for warning in ruleset.warnings:
            log.warning("rule_warning", problem=str(warning))
        return ruleset

    def reload(self) -> bool:
        """Load the folder again; keep the last good set if it is invalid. True if swapped."""
        try:
            ruleset = self._load()
        except RuleFileError as exc:
            log.error(
                "rules_invalid_kept_last_good",
                rule_set=self._current.digest,
                problems=[str(p) for p in exc.problems],
            )
            return False
        if ruleset.digest != self._current.digest:
            if self.snapshots is not None:
                publish(ruleset, self.snapshots)
            self._current = ruleset
            log.info("rules_reloaded", rule_set=ruleset.digest, rules=len(ruleset.rules))
        return True

    def start(self) -> RuleBook:
        """Watch the folder (inotify where the platform has it) until `stop`."""
        observer = Observer()
        observer.schedule(_Changed(self._changed), str(self.folder), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer
        return self

    def _changed(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.settle_seconds, self.reload)
            self._timer.daemon = True
            self._timer.start()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def __enter__(self) -> RuleBook:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def publish(ruleset: RuleSet, snapshots: Path) -> None:
    """Write the set's files to `snapshots/<digest>/` and point `snapshots/current` at it.

    Snapshots never change once written, and the pointer is replaced atomically, so a
    process that reads the pointer and then the folder always loads one whole set.
    """
    snapshots.mkdir(parents=True, exist_ok=True)
    folder = snapshots / ruleset.digest
    if not folder.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=".new-", dir=snapshots))
        for name, text in ruleset.sources:
            (scratch / name).write_text(text, encoding="utf-8")
        try:
            os.replace(scratch, folder)
        except OSError:  # another process published the same set first
            shutil.rmtree(scratch, ignore_errors=True)
    pointer = snapshots / f".current-{os.getpid()}"
    pointer.write_text(ruleset.digest)
    os.replace(pointer, snapshots / "current")


def current_snapshot(snapshots: Path) -> RuleSet:
    """The set in force, as the daemon last published it."""
    digest = (snapshots / "current").read_text().strip()
    ruleset = RuleSet.from_paths([snapshots / digest])
    if ruleset.digest != digest:
        raise RuleFileError([Problem(str(snapshots / digest), 1, 1, "snapshot was altered")])
    return ruleset


class _Changed(FileSystemEventHandler):
    def __init__(self, callback) -> None:  # type: ignore[no-untyped-def]
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "modified", "deleted", "moved"):
            self._callback()
