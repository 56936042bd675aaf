"""The state folder: private to the user the daemon runs as, and used by one daemon at a time.

Two daemons on one state folder would take each other's jobs back, wipe each other's work
files and quarantine good clips. The first daemon holds an exclusive `flock` on
`daemon.lock` for its whole life (the kernel lets go when the process ends, however it ends,
so a kill -9 never leaves a stale lock); a second one is refused with the holder's pid.
Readers (`privmask status`) take no lock: the journal is safe to read while the daemon runs.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from privmask.daemon.config import ConfigError

LOCK_NAME = "daemon.lock"


class StateInUse(ConfigError):
    """Another daemon holds this state folder."""


def make_private(state: Path) -> None:
    """Create the state folder 0700, or tighten an existing one (it holds the journal of
    every clip's path, work files with redacted video, and maybe a generated password)."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = state.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        state.chmod(0o700)


def hold(state: Path) -> int:
    """Take the state folder for this process's life; returns the lock file's descriptor,
    which must stay open (closing it lets go). StateInUse names the daemon that has it."""
    fd = os.open(state / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StateInUse(
            f"{state} is in use by another privmask daemon (pid {holder}); "
            "one daemon per state folder"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
