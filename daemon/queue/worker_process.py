"""`privmask worker`: a Celery worker that takes redaction jobs from the broker.

Everything secret is read here, from this machine's own config, files and credentials: the
package password, the site's signing key, the broker's password. Nothing secret is ever
read from the broker. Each job runs in a pool process forked from this one, which dies
with it (a worker killed with kill -9 leaves no child redacting on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from celery import signals
from celery.exceptions import CPendingDeprecationWarning
from kombu import Connection

from privmask.daemon.config import Config, ConfigError
from privmask.daemon.custody.sitekey import site_key
from privmask.daemon.delivery import Custody
from privmask.daemon.liveness import killed_with_parent
from privmask.daemon.logs import configure, describe
from privmask.daemon.queue.app import make_app
from privmask.daemon.queue.protocol import TASK_NAME, Report, Topology, signed
from privmask.daemon.queue.settings import QueueSpec, error_text, shown
from privmask.daemon.queue.task import WorkerSetup, publish_report, take
from privmask.daemon.secrets import SecretError, read_secret

log = structlog.get_logger("privmask.worker")

CONNECT_SECONDS = 5.0  # a broker that takes longer to answer is as good as down


def serve(config: Config, concurrency: int | None = None, name: str | None = None) -> int:
    """Take jobs until SIGTERM (finishing the ones running) or SIGQUIT (at once)."""
    setup = worker_setup(config)
    spec = config.queue
    assert spec is not None  # worker_setup says so
    reachable(spec, setup.url)
    app = make_app(spec, setup.url)
    nodename = name or f"privmask-{os.getpid()}@{socket.gethostname()}"

    @app.task(name=TASK_NAME, bind=True)
    def redact(task: Any, message: dict[str, Any]) -> None:
        take(message, setup, app, nodename)

    beacon = Beacon(app, setup, nodename, concurrency or spec.concurrency, spec.alive_seconds)
    signals.worker_ready.connect(beacon.start, weak=False)
    signals.worker_shutdown.connect(beacon.stop, weak=False)  # after the jobs, not in a handler
    signals.setup_logging.connect(_celery_logs_as_json, weak=False)
    signals.worker_process_init.connect(_child_started, weak=False)
    signals.celeryd_after_setup.connect(_quiet_chosen_setting, weak=False)
    log.info(
        "worker_ready",
        worker=nodename,
        broker=shown(spec.broker),
        queue=spec.name,
        concurrency=concurrency or spec.concurrency,
    )
    worker = app.Worker(
        hostname=nodename,
        concurrency=concurrency or spec.concurrency,
        pool="prefork",
        loglevel="WARNING",
        without_gossip=True,
        without_mingle=True,
        quiet=True,
        redirect_stdouts=False,
    )
    worker.start()
    return int(worker.exitcode or 0)


def worker_setup(config: Config) -> WorkerSetup:
    """What every try needs, read once; one line (ConfigError) for anything missing."""
    spec = config.queue
    if spec is None:
        raise ConfigError("privmask worker needs a `queue:` section naming the broker")
    if config.password is None:
        raise ConfigError(
            "privmask worker needs `password` (file, env or credential): the daemon's package "
            "password, given to each worker by the site, never sent over the broker"
        )
    if config.signing_key is None:
        raise ConfigError(
            "privmask worker needs `signing_key` (file, env or credential): the site key "
            "that signs manifests, given to each worker by the site, never sent over the broker"
        )
    shares = [("outbox", config.outbox), ("escrow store", config.escrow_store)]
    shares += [(f"queue.paths: {there}:", Path(here)) for there, here in spec.paths.items()]
    for what, folder in shares:
        if not folder.is_dir():
            raise ConfigError(f"{what} {folder} is not a folder here (is the share mounted?)")
    config.work.mkdir(mode=0o700, parents=True, exist_ok=True)
    # three secrets from three settings, all this machine's own: say which one failed
    with _setting("password"):
        password = read_secret(config.password)
    with _setting("signing_key"):
        signer = site_key(config)
    with _setting("queue.password"):
        url = spec.connection_url()
    custody = Custody.of(config, signer)
    return WorkerSetup(
        config, password, custody, url, Topology(spec.name, spec.delivery_limit), spec.paths
    )


@contextlib.contextmanager
def _setting(key: str) -> Iterator[None]:
    """A secret that cannot be read: one line naming the setting (and where, never what)."""
    try:
        yield
    except (SecretError, ConfigError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def reachable(spec: QueueSpec, url: str) -> None:
    """One line, not an endless retry, when the broker cannot be reached at start."""
    connection = Connection(url, connect_timeout=CONNECT_SECONDS)
    try:
        connection.ensure_connection(max_retries=1, timeout=CONNECT_SECONDS)
    except Exception as exc:  # refused, unknown host, TLS, wrong password
        raise ConfigError(
            f"cannot reach the broker {shown(spec.broker)}: {error_text(exc)}"
        ) from None
    finally:
        connection.release()


def _quiet_chosen_setting(**_: Any) -> None:
    """Celery warns, on every lost connection, that 6.0 will cancel running late-ack tasks:
    app.py chose not to, on purpose, and the notice only buries the log. Added once Celery
    has set up its logging, whose own `always` filter would otherwise come first."""
    warnings.filterwarnings("ignore", "\nIn Celery 5.1 we introduced", CPendingDeprecationWarning)


def _child_started(**_: Any) -> None:
    """A pool process: JSON logs, and death with its worker (PR_SET_PDEATHSIG)."""
    configure(json=True)
    killed_with_parent()


class _JsonLines(logging.Handler):
    """A record of Celery's (a lost connection, an ack that failed, a warning) as one JSON
    event like every other, the error named without its traceback (a log shipper would
    split a traceback into dozens of broken records)."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            fields.update(describe(record.exc_info[1], record.exc_info[2]))
        level = record.levelname.lower() if record.levelno < logging.ERROR else "error"
        getattr(log, level if level in ("info", "warning", "error") else "warning")(
            "celery", **fields
        )


def _celery_logs_as_json(**_: Any) -> None:
    """Given as Celery's `setup_logging`: Celery then leaves logging to us."""
    root = logging.getLogger()
    root.handlers[:] = [_JsonLines()]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)  # Celery's SecurityWarning and the like, as events too


class Beacon:
    """Tells the daemon every `every` seconds that this worker is there (a signed `alive`
    report), and once more when it stops: `privmask status` tells a live idle worker from
    one that is gone. A beat the broker does not take is skipped, never waited for."""

    def __init__(
        self, app: Any, setup: WorkerSetup, name: str, concurrency: int, every: float
    ) -> None:
        self._app, self._setup, self._name = app, setup, name
        self._concurrency, self._every = concurrency, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="beacon", daemon=True)

    def start(self, **_: Any) -> None:
        self._thread.start()

    def stop(self, **_: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(CONNECT_SECONDS)
        self._say(stopping=True)

    def _beat(self) -> None:
        while not self._stop.is_set():
            self._say()
            self._stop.wait(self._every)

    def _say(self, stopping: bool = False) -> None:
        detail = {"host": socket.gethostname(), "concurrency": self._concurrency}
        if stopping:
            detail["stopping"] = True
        report = Report("alive", 0, 0, "", self._name, detail)
        message = signed(report.to_message(), self._setup.custody.signer)
        try:
            publish_report(self._app, self._setup.topology, message, retries=1)
        except Exception as exc:  # the broker away: the next beat says it
            log.warning("alive_not_sent", worker=self._name, error=str(exc))
