"""A real RabbitMQ broker for tests: Debian's rabbitmq-server run as our own child process,
on loopback only, with its config, data, logs, Erlang cookie and epmd private to one folder
(never the system service, never the shared epmd on 4369)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from kombu import Connection

# not /usr/sbin/rabbitmq-server: that wrapper su's to the rabbitmq user
SBIN = Path("/usr/lib/rabbitmq/bin")
USER, PASSWORD = "privmask", "privmask-test"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different ports free now (each held until all are picked: a port closed
    before the next pick can come back twice)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


class BrokerError(RuntimeError):
    pass


class Broker:
    """One RabbitMQ node under `root`; `restart()` keeps its data folder and ports."""

    def __init__(self, root: Path, consumer_timeout_ms: int | None = None) -> None:
        self.root = root
        self.port, self.dist_port, self.epmd_port = free_ports(3)
        self.node = f"privmask-test-{self.port}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms
        self.log = root / "log" / "rabbit.log"
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        conf = [
            f"listeners.tcp.default = 127.0.0.1:{self.port}",
            f"default_user = {USER}",
            f"default_pass = {PASSWORD}",
            "log.console = false",
            "log.file = rabbit.log",
            "log.file.level = info",
        ]
        tick = 60000  # RabbitMQ's default
        if consumer_timeout_ms is not None:
            conf.append(f"consumer_timeout = {consumer_timeout_ms}")
            # channels check consumer timeouts only on their tick: make it 1 s, or a 3 s
            # timeout cuts the consumer up to 60 s late
            tick = 1000
        advanced = f"[{{rabbit, [{{channel_tick_interval, {tick}}}]}}].\n"
        (root / "advanced.config").write_text(advanced)
        (root / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (root / "enabled_plugins").write_text("[].\n")  # no plugins: starts faster
        (root / "rabbitmq-env.conf").write_text("")  # shadows /etc/rabbitmq/rabbitmq-env.conf

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        """The environment of the server and of rabbitmqctl: both must agree on all of it."""
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"  # dist port on loopback only
        # nothing inherited may switch the script's mode (NOTIFY_SOCKET: exec as under systemd)
        inherited = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k != "NOTIFY_SOCKET"
        }
        return {
            **inherited,
            "HOME": str(self.root),  # our own .erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # no erl of ours may daemonize an epmd (rabbitmqctl's would, against a stopped node,
            # and it would outlive us): ours runs from start() to kill()
            "ERL_AFLAGS": "-start_epmd false",
        }

    def start(self, timeout: float = 120.0) -> float:
        """Start the node and return the seconds until an AMQP connection succeeded."""
        began = time.monotonic()
        # our own epmd in the foreground: erl would otherwise daemonize one that outlives us
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(self.root / "server.out", "ab") as out:
            self._server = subprocess.Popen(
                [str(SBIN / "rabbitmq-server")], env=self.env, cwd=self.root,
                start_new_session=True,  # its own process group: stop/kill reach beam.smp
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        while time.monotonic() - began < timeout:
            if self._server.poll() is not None:
                break
            try:
                with Connection(self.url, connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1)
                return time.monotonic() - began
            except Exception:
                time.sleep(0.25)
        code = self._server.poll()
        self.kill()
        raise BrokerError(f"RabbitMQ did not start (exit code {code}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log, self.root / "server.out"):
            if path.exists():
                text += f"--- {path}\n" + "\n".join(path.read_text().splitlines()[-lines:]) + "\n"
        return text

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        result = subprocess.run(
            [str(SBIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
            capture_output=True, text=True, timeout=timeout, check=True,
        )
        return result.stdout

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (queues flushed to disk); the process group is killed if it lingers."""
        if self._server is not None and self._server.poll() is None:
            # SIGTERM to the script: its trap runs `rabbitmqctl stop` and waits for the node
            self._server.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._server.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole process group (beam.smp, erl_child_setup, ...) and to epmd."""
        for proc in (self._server, self._epmd):
            if proc is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group outlives a leader that exited
            proc.wait()
        self._server = self._epmd = None
        # erl_child_setup and its helpers exit once beam.smp is gone; kill any that linger
        deadline = time.monotonic() + 5
        while (left := self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5  # a SIGKILL is not instant: until they are gone
        while self.pids and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def queue_depth(self, name: str) -> int:
        with Connection(self.url) as conn:
            _, count, _ = conn.default_channel.queue_declare(name, passive=True)
            return int(count)

    @property
    def pids(self) -> list[int]:
        """Our live processes: all that run with HOME in our folder, the server's group, epmd,
        and erl_child_setup with its helpers, which leave the group (setsid)."""
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError, IndexError):
                if f"HOME={self.root}".encode() in environ.read_bytes().split(b"\0"):
                    stat = (environ.parent / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":  # zombies are gone
                        found.append(int(environ.parent.name))
        return found
