"""`privmask worker` given something wrong: one line on stderr naming what, an exit code, no
traceback, and never the broker's password; as an operator setting up a machine sees it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from privmask.adapters.minisign import SecretKey

from broker import PASSWORD as BROKER_PASSWORD
from broker import USER as BROKER_USER
from broker import Broker, free_port
from harness import PRIVMASK

Result = subprocess.CompletedProcess[str]
WRONG = "not-the-password-xyz"  # a password that must never be printed either


class Machine:
    """A worker machine's folders and config: the shares as mounted here, its secrets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outbox, self.escrow = root / "outbox", root / "escrow"
        self.outbox.mkdir()
        self.escrow.mkdir()
        self.password = root / "password"
        self.password.write_text("package password\n")
        self.key = root / "site.key"
        self.key.write_bytes(SecretKey.generate().to_bytes())
        self.broker_password = root / "broker-password"
        self.broker_password.write_text(BROKER_PASSWORD)
        for secret in (self.password, self.key, self.broker_password):
            secret.chmod(0o600)
        self.config = root / "worker.yaml"

    def settings(self, port: int) -> dict[str, Any]:
        return {
            "inboxes": [str(self.root / "inbox")],
            "outbox": str(self.outbox),
            "state": str(self.root / "state"),
            "password": {"file": str(self.password)},
            "signing_key": {"file": str(self.key)},
            "escrow": {"store": str(self.escrow)},
            "queue": {
                "broker": f"amqp://{BROKER_USER}@127.0.0.1:{port}/",
                "password": {"file": str(self.broker_password)},
                "name": "t.worker-cli",
            },
        }

    def worker(self, settings: dict[str, Any], *args: str) -> tuple[Result, float]:
        """`privmask worker --config ...` as the operator runs it, and how long it took."""
        self.config.write_text(yaml.safe_dump(settings))
        began = time.monotonic()
        result = subprocess.run(
            [*PRIVMASK, "worker", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return result, time.monotonic() - began


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def one_line(result: Result, code: int) -> str:
    """The single error line, after checking exit code, no traceback, no password."""
    output = result.stdout + result.stderr
    for secret in (BROKER_PASSWORD, WRONG):
        assert secret not in output
    assert "Traceback" not in output
    assert result.returncode == code, output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, output
    return lines[0]


def without(settings: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in keys}


def queue(settings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**settings, "queue": {**settings["queue"], **changes}}


def test_help_says_what_a_worker_does() -> None:
    result = subprocess.run([*PRIVMASK, "worker", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--concurrency" in text and "--name" in text and "--config" in text
    assert "RabbitMQ" in text and "nothing secret comes over the broker" in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: without(s, "queue"), "needs a `queue:` section"),
        (lambda s: without(s, "password"), "needs `password`"),
        (lambda s: without(s, "signing_key"), "needs `signing_key`"),
    ],
    ids=["no queue", "no password", "no signing key"],
)
def test_a_config_without_what_a_worker_needs_names_it(
    machine: Machine, change: Callable[[dict[str, Any]], dict[str, Any]], expected: str
) -> None:
    result, _ = machine.worker(change(machine.settings(free_port())))
    line = one_line(result, 1)
    assert expected in line
    assert line.startswith("privmask: error: ")


@pytest.mark.parametrize("share", ["outbox", "escrow"])
def test_a_share_not_mounted_here_is_named(machine: Machine, share: str) -> None:
    getattr(machine, share).rmdir()
    result, _ = machine.worker(machine.settings(free_port()))
    line = one_line(result, 1)
    assert str(getattr(machine, share)) in line
    assert "is the share mounted?" in line


def test_a_mapped_folder_missing_here_is_named_at_start(machine: Machine) -> None:
    """A `queue.paths` target that is not there (a share not mounted, a typo): said once at
    start, not found job by job while every clip bounces between workers."""
    settings = queue(machine.settings(free_port()), paths={"/srv/inbox": "/nowhere/inbox"})
    result, _ = machine.worker(settings)
    line = one_line(result, 1)
    assert "queue.paths" in line and "/nowhere/inbox" in line
    assert "is the share mounted?" in line


@pytest.mark.parametrize(
    ("secret", "key"),
    [("password", "password"), ("key", "signing_key"), ("broker_password", "queue.password")],
)
def test_a_secret_file_missing_here_names_its_setting(
    machine: Machine, secret: str, key: str
) -> None:
    path = getattr(machine, secret)
    path.unlink()
    line = one_line(machine.worker(machine.settings(free_port()))[0], 1)
    assert line.startswith(f"privmask: error: {key}: ")
    assert f"{path} does not exist" in line


def test_a_broker_url_holding_a_password_names_the_key_to_use(machine: Machine) -> None:
    settings = machine.settings(free_port())
    url = f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@127.0.0.1:5672/"
    line = one_line(machine.worker(queue(settings, broker=url))[0], 1)
    assert "queue.broker" in line and "use `password`" in line
    assert str(machine.config) in line


def test_a_broker_that_does_not_answer_is_one_line_at_once(machine: Machine) -> None:
    port = free_port()  # nothing listens there
    result, seconds = machine.worker(machine.settings(port))
    line = one_line(result, 1)
    assert f"cannot reach the broker amqp://{BROKER_USER}@127.0.0.1:{port}/" in line
    print(f"closed port: {seconds:.1f} s")  # well under a minute: no endless retry


def test_a_broker_that_never_answers_is_one_line_after_a_short_wait(machine: Machine) -> None:
    with socket.socket() as silent:  # takes the connection (backlog) and never speaks AMQP
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        result, seconds = machine.worker(machine.settings(port))
    line = one_line(result, 1)
    assert f"cannot reach the broker amqp://{BROKER_USER}@127.0.0.1:{port}/: timed out" in line
    print(f"silent broker: {seconds:.1f} s")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--concurrency", "0"), "--concurrency must be 1..64"),
        (("--concurrency", "65"), "--concurrency must be 1..64"),
        (("--concurrency", "two"), "invalid int value"),
        (("--name", "lonely"), "--name must look like NAME@HOST"),
    ],
)
def test_a_bad_flag_is_a_usage_error(
    machine: Machine, args: tuple[str, ...], expected: str
) -> None:
    result, _ = machine.worker(machine.settings(free_port()), *args)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and BROKER_PASSWORD not in output
    assert expected in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_a_wrong_broker_password_is_one_line(machine: Machine, broker: Broker) -> None:
    machine.broker_password.write_text(WRONG)
    result, seconds = machine.worker(machine.settings(broker.port))
    line = one_line(result, 1)
    assert f"cannot reach the broker amqp://{BROKER_USER}@127.0.0.1:{broker.port}/" in line
    assert "refused" in line.lower() or "password" in line.lower()
    print(f"wrong password: {seconds:.1f} s")
