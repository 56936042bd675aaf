"""Intake decisions: is a candidate file a temporary, and is it finished being written?

Recorders, VMS exports and file copies over SMB write a clip over seconds or minutes, often
under a temporary name that is renamed at the end, sometimes in place with no sign of when
they are done. A file is only taken once its name is final and its size, mtime and inode
have stayed the same for a quiet window (or, in marker mode, once `clip.mp4.done` exists).
Everything here is a pure decision except `StabilityTracker.observe`/`ready`, which stat().
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# the temporary-name rule is shared with the folder watcher, which is the lower layer
from privmask.adapters.watch import TEMP_PATTERNS, is_temporary

__all__ = [
    "TEMP_PATTERNS",
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

    size: int
    mtime_ns: int
    inode: int
    at: float

    @property
    def identity(self) -> tuple[int, int, int]:
        """What must not change while a file is quiet."""
        return (self.size, self.mtime_ns, self.inode)


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
    return Observation(size=info.st_size, mtime_ns=info.st_mtime_ns, inode=info.st_ino, at=at)


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
