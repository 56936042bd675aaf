"""A real `privmask run` process for tests: config in, JSON log events out."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from privmask.adapters.minisign import PublicKey, SecretKey
from privmask.adapters.package import read_package

PASSWORD = "correct horse battery staple"


class Daemon:
    def __init__(self, root: Path, models_dir: Path, **settings: Any) -> None:
        self.root = root
        self.inbox, self.outbox = root / "inbox", root / "outbox"
        self.quarantine, self.state = root / "quarantine", root / "state"
        self.escrow = Path(settings.get("escrow", {}).get("store", root / "escrow"))
        self.inbox.mkdir(exist_ok=True)
        self.outbox.mkdir(exist_ok=True)  # a share: it exists before the daemon starts
        self.escrow.mkdir(exist_ok=True)  # a share too
        self.password_file = root / "password"
        if not self.password_file.exists():
            self.password_file.write_text(PASSWORD + "\n")
            self.password_file.chmod(0o600)
        config = {
            "inboxes": [str(self.inbox)],
            "outbox": str(self.outbox),
            "quarantine": str(self.quarantine),
            "state": str(self.state),
            "models": str(models_dir),
            "password": {"file": str(self.password_file)},
            "quiet_seconds": 0.5,
            "network_quiet_seconds": 0.5,
            "scan_seconds": 1.0,
            "storage_check_seconds": 0.5,
            "retry": {"max_attempts": 3, "backoff_seconds": 0.5},
            **settings,
            "escrow": {**settings.get("escrow", {}), "store": str(self.escrow)},
        }
        self.config = root / "privmask.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self, *extra: str, wrapper: Sequence[str] = ()) -> Daemon:
        """`wrapper`: a command line that runs the daemon's command line given after it
        (e.g. a shell in a private mount namespace)."""
        self.events.clear()
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "privmask.daemon.cli", "run", "--config",
             str(self.config), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
            start_new_session=True,  # its own process group: kill() takes the workers too
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("started")
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):  # not every line is an event
                self.events.append(json.loads(line))

    def wait_for(
        self, event: str, count: int = 1, timeout: float = 120, **fields: Any
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                e
                for e in self.events
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
            ]
            if len(found) >= count:
                return found[count - 1]
            if self.process is not None and self.process.poll() is not None and event != "stopped":
                raise AssertionError(
                    f"daemon exited {self.process.returncode}:\n{''.join(self.lines[-30:])}"
                )
            time.sleep(0.05)
        raise AssertionError(
            f"no {event} {fields} within {timeout} s:\n{''.join(self.lines[-30:])}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """kill -9 the daemon and its workers at once, as a power cut would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def packages(self) -> list[Path]:
        return sorted(self.outbox.glob("*.zip"))

    def audit(self) -> list[dict[str, Any]]:
        """The audit log's entries, oldest first."""
        log = self.state / "audit" / "log.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def site_key(self) -> PublicKey:
        """The public half of the signing key this daemon generated into its state."""
        return SecretKey.parse((self.state / "signing.key").read_bytes()).public

    def read(self, package: Path, password: str = PASSWORD) -> tuple[bytes, dict[str, Any]]:
        """A package's video and manifest, its signature checked against this site's key."""
        return read_package(package, password.encode(), self.site_key())

    def leftovers(self) -> list[Path]:
        """Temporary files anywhere in the outbox: there must never be any after a stop."""
        return [p for p in self.outbox.rglob("*") if p.name.startswith(".")]


PRIVMASK = [sys.executable, "-m", "privmask.daemon.cli"]


def privmask(
    *args: object, models: Path | None = None, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`privmask ARGS` as a user runs it (with `models`: PRIVMASK_MODELS set to it)."""
    env = {**os.environ, **({"PRIVMASK_MODELS": str(models)} if models else {})}
    return subprocess.run(
        [*PRIVMASK, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def run_cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """One `privmask COMMAND --config CONFIG` in its own session; killed with its children
    (a daemon's workers too) if it runs past `timeout`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "privmask.daemon.cli", *args, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"privmask {' '.join(args)} still running after {timeout} s") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def children(pid: int) -> list[int]:
    """The processes `pid` started and that are still there (from /proc, Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return sorted(found)


def worker_pids(daemon: Daemon, count: int, timeout: float = 60) -> list[int]:
    """The daemon's worker processes (its spawned children that are not the resource
    tracker), once there are `count` of them at work: started and holding the journal."""
    assert daemon.process is not None
    journal = str(daemon.state / "journal.sqlite")
    pids: list[int] = []

    def found() -> bool:
        nonlocal pids
        pids = [
            p
            for p in children(daemon.process.pid)  # type: ignore[union-attr]
            if _is_worker(p) and journal in _open_files(p)
        ]
        return len(pids) >= count

    if not eventually(found, timeout):
        raise AssertionError(f"{len(pids)} workers, not {count}")
    return pids


def _is_worker(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in command and b"resource_tracker" not in command


def _open_files(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(fd))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def eventually(condition: Callable[[], bool], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_peer(command: list[str], what: str) -> subprocess.Popen[str]:
    """A peer process (a camera, a recorder) that prints "ready" once it listens; RuntimeError
    naming `what` when it does not."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        stop_peer(process)
        raise RuntimeError(f"{what} did not start")
    return process


def stop_peer(process: subprocess.Popen[str]) -> None:
    """Stop a peer: SIGTERM, then SIGKILL if it has not ended within 5 s."""
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
