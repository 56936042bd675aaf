"""A site on many machines, on one box: a real `privmask run` with `queue:` in its config,
real `privmask worker` processes, and a real RabbitMQ (`broker.py`) between them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from privmask.adapters.minisign import SecretKey
from privmask.adapters.package import read_package

from broker import PASSWORD as BROKER_PASSWORD
from broker import USER as BROKER_USER
from broker import Broker
from harness import PASSWORD, Daemon


class Worker:
    """One `privmask worker` process (its own session: kill() takes its pool too)."""

    def __init__(
        self, config: Path, name: str, log: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "privmask.daemon.cli", "worker", "--config", str(config),
                 "--name", name, *extra],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})},
            )  # fmt: skip

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if isinstance(entry, dict) and (event is None or entry.get("event") == event):
                    found.append(entry)
        return found

    def wait_for(self, event: str, count: int = 1, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(event)
            if len(found) >= count:
                return found[count - 1]
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name}: no {event} within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM: a warm shutdown, the running job finished first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9 of the worker and its pool at once, as a machine that dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Site:
    """The daemon host (a `Daemon` with `queue:`) and its workers, sharing its folders."""

    def __init__(
        self, root: Path, models_dir: Path, broker: Broker, queue: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:  # fmt: skip
        self.root, self.broker = root, broker
        key = root / "site.key"  # given to the daemon and each worker, never over the broker
        self.key = SecretKey.generate()
        key.write_bytes(self.key.to_bytes())
        key.chmod(0o600)
        secret = root / "broker-password"
        secret.write_text(BROKER_PASSWORD)
        secret.chmod(0o600)
        spec = {
            "broker": f"amqp://{BROKER_USER}@127.0.0.1:{broker.port}/",
            "password": {"file": str(secret)},
            **(queue or {}),
        }
        signing_key = {"file": str(key)}
        self.daemon = Daemon(root, models_dir, queue=spec, signing_key=signing_key, **settings)
        self.workers: list[Worker] = []

    def worker(self, *extra: str, env: dict[str, str] | None = None, **settings: Any) -> Worker:
        """A new worker with its own state folder (work files); the shares are the daemon's;
        `settings` change its config, `env` its environment."""
        index = len(self.workers)
        config = yaml.safe_load(self.daemon.config.read_text())
        config["state"] = str(self.root / f"worker{index}")
        config.update(settings)
        path = self.root / f"worker{index}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = self.root / f"worker{index}.log"
        worker = Worker(path, f"w{index}@test", log, *extra, env=env)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self.daemon.process is not None and self.daemon.process.poll() is None:
            self.daemon.kill()

    def read(self, package: Path) -> tuple[bytes, dict[str, Any]]:
        """A package's video and manifest, its signature checked against the site key."""
        return read_package(package, PASSWORD.encode(), self.key.public)

    def events(self, event: str) -> list[dict[str, Any]]:
        """`event` as every worker logged it."""
        return [e for w in self.workers for e in w.events(event)]
