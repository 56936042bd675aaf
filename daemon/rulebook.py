"""The daemon's rules: one folder of rule files, loaded whole, reloaded when it changes.

A job takes `rulebook.current` once and keeps that `RuleSet` to the end, so it never sees a
half-loaded set; a reload builds a new set and swaps the reference. A change that makes the
folder invalid is logged with file, line and column, and the last good set stays in force;
so does a set that `accept` refuses (the daemon's: a rule needs a model that is not
installed), and a reload that fails in any other way (one event with the error's type).
The folder is watched through `adapters.watch`; snapshots for worker processes are published
atomically and durably through `adapters.files`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import structlog

from privmask.adapters import files
from privmask.adapters.models import ModelError
from privmask.adapters.watch import watch_folder
from privmask.daemon.logs import describe
from privmask.rules.files import Problem, RuleFileError
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import RuleSet

log = structlog.get_logger("privmask.rules")


class RuleBook:
    def __init__(
        self,
        folder: Path,
        settle_seconds: float = 0.3,
        snapshots: Path | None = None,
        accept: Callable[[RuleSet], None] | None = None,
    ) -> None:
        """Load the folder now; raise RuleFileError if it is not a valid, non-empty set.

        With `snapshots`, every set in force is also written there (see `publish`), for
        worker processes to read. `accept` is called with every set before it is put in
        force, and refuses it by raising ModelError or PlanError (the daemon's checks that
        the models its rules need are installed, `pipeline.setup.check_models`).
        """
        self.folder = folder
        self.settle_seconds = settle_seconds  # editors save in bursts: wait for quiet
        self.snapshots = snapshots
        self.accept = accept
        self._current = self._load()
        if snapshots is not None:
            publish(self._current, snapshots)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._stop_watching: Callable[[], None] | None = None
        log.info("rules_loaded", rule_set=self._current.digest, rules=len(self._current.rules))

    @property
    def current(self) -> RuleSet:
        return self._current

    def _load(self) -> RuleSet:
        ruleset = RuleSet.from_paths([self.folder])
        if not ruleset.rules:
            raise RuleFileError([Problem(str(self.folder), 1, 1, "the rules folder holds no rule")])
        if self.accept is not None:
            self.accept(ruleset)
        for warning in ruleset.warnings:
            log.warning("rule_warning", problem=str(warning))
        return ruleset

    def reload(self) -> bool:
        """Load the folder again; keep the last good set if it is invalid or refused, or if
        the reload fails in any other way. True if the folder's set is in force."""
        try:
            return self._reload()
        except RuleFileError as exc:
            problems = [str(p) for p in exc.problems]
        except (ModelError, PlanError) as exc:
            problems = [str(exc)]
        except Exception as exc:  # a bug, a disk: one event; the next change reloads as usual
            log.error("rules_reload_failed", rule_set=self._current.digest, **describe(exc))
            return False
        log.error("rules_invalid_kept_last_good", rule_set=self._current.digest, problems=problems)
        return False

    def _reload(self) -> bool:
        ruleset = self._load()
        if ruleset.digest != self._current.digest:
            if self.snapshots is not None:
                publish(ruleset, self.snapshots)
            self._current = ruleset
            log.info("rules_reloaded", rule_set=ruleset.digest, rules=len(ruleset.rules))
        return True

    def start(self) -> RuleBook:
        """Watch the folder (inotify where the platform has it) until `stop`."""
        self._stop_watching = watch_folder(self.folder, self._changed)
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
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None

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

    Snapshots never change once written, and both the folder and the pointer are published
    atomically and durably, so a process that reads the pointer and then the folder always
    loads one whole set, also after a power cut.
    """
    snapshots.mkdir(parents=True, exist_ok=True)
    folder = snapshots / ruleset.digest
    if not folder.is_dir():
        with files.staging(folder) as scratch:
            scratch.mkdir(mode=0o700)
            for name, text in ruleset.sources:
                (scratch / name).write_text(text, encoding="utf-8")
            try:
                files.publish(scratch, folder)
            except OSError:  # another process may have published the same set first
                if not folder.is_dir():
                    raise
    # 0o666 less the umask, as a plain write would make it: workers only need to read it
    files.write_file(snapshots / "current", ruleset.digest.encode("ascii"), mode=0o666)


def current_snapshot(snapshots: Path) -> RuleSet:
    """The set in force, as the daemon last published it."""
    return snapshot(snapshots, (snapshots / "current").read_text().strip())


def snapshot(snapshots: Path, digest: str) -> RuleSet:
    """The set the daemon published as `digest`, refused if its files were changed since."""
    ruleset = RuleSet.from_paths([snapshots / digest])
    if ruleset.digest != digest:
        raise RuleFileError([Problem(str(snapshots / digest), 1, 1, "snapshot was altered")])
    return ruleset
