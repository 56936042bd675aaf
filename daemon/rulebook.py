"""The daemon's rules: one folder of rule files, loaded whole, reloaded when it changes.

A job takes `rulebook.current` once and keeps that `RuleSet` to the end, so it never sees a
half-loaded set; a reload builds a new set and swaps the reference. A change that makes the
folder invalid is logged with file, line and column, and the last good set stays in force.
"""

from __future__ import annotations

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
    def __init__(self, folder: Path, settle_seconds: float = 0.3) -> None:
        """Load the folder now; raise RuleFileError if it is not a valid, non-empty set."""
        self.folder = folder
        self.settle_seconds = settle_seconds  # editors save in bursts: wait for quiet
        self._current = self._load()
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


class _Changed(FileSystemEventHandler):
    def __init__(self, callback) -> None:  # type: ignore[no-untyped-def]
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "modified", "deleted", "moved"):
            self._callback()
