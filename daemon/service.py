"""`privmask run`: the supervisor loop of the watch-folder service.

The main process runs intake (`intake.py`: watch, wait until complete, hash, validate, queue
or quarantine), starts and replaces worker processes that redact the queued jobs
(`worker.py`), and runs camera discovery and live masking (`live/`). Signals only set a flag;
the loop waits with a timeout and acts, and shutdown gives running jobs a deadline, after
which they are interrupted and put back in the queue, never left half-written.

One daemon per state folder (`statefolder.py`). Workers are told to stop through a pipe,
never through a lock a killed worker could leave held, and they die with the daemon. A
worker that stops heartbeating or runs past its job's time limit (`liveness.py`) is killed;
its job goes back like any crash, and its partial package and work files are removed then.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import structlog

from privmask.adapters import age, files
from privmask.daemon import notify, statefolder
from privmask.daemon.config import DEFAULT_ROOT, DEFAULT_RULES, Config, ConfigError
from privmask.daemon.custody import escrow, retention
from privmask.daemon.custody.audit import AuditError, AuditLog
from privmask.daemon.custody.sitekey import site_key
from privmask.daemon.delivery import Custody, remove_partials
from privmask.daemon.intake import Intake
from privmask.daemon.journal import Job, JobState, Journal
from privmask.daemon.live.supervisor import LiveSupervisor
from privmask.daemon.liveness import overdue
from privmask.daemon.quarantine import quarantine
from privmask.daemon.queue.dispatch import QueueLink
from privmask.daemon.retry import RetryPolicy
from privmask.daemon.review import serving as review_serving
from privmask.daemon.rulebook import RuleBook, publish
from privmask.daemon.secrets import SecretSource, read_secret
from privmask.daemon.storage import Storage
from privmask.daemon.sweeps.runner import SweepRunner
from privmask.daemon.sweeps.scheduler import SweepScheduler
from privmask.daemon.workers import WorkerPool
from privmask.rules.files import parse_rules
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import RuleSet

log = structlog.get_logger("privmask.service")

SHUTDOWN_SECONDS = 60.0  # a running job gets this long to finish after SIGTERM
LIVE_CHECK_SECONDS = 10.0  # how soon live masking follows a rule or camera change
OVERDUE_CHECK_SECONDS = 2.0  # how often the claims are checked for hung workers
RETENTION_CHECK_SECONDS = 3600.0  # how often expired originals are looked for
PARTIAL_AGE_SECONDS = 86_400.0  # with a broker, a partial file untouched this long is stale


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._stop = threading.Event()
        self._signals = 0
        self._workers: WorkerPool | None = None
        self._policy = RetryPolicy(config.max_attempts, config.backoff_seconds)

    # signals only record; the loop acts
    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals += 1
        if self._signals > 1:
            # a second Ctrl-C forces the exit: interrupted jobs go back at the next start
            log.warning("forced_exit")
            if self._workers is not None:
                self._workers.kill()
            os._exit(128 + signum)
        log.info("stopping", signal=signal.Signals(signum).name)
        self._stop.set()

    def run(self) -> int:
        config = self.config
        statefolder.make_private(config.state)
        lock = statefolder.hold(config.state)  # held until this process ends
        try:
            return self._run(config)
        finally:
            os.close(lock)

    def _run(self, config: Config) -> int:
        _prepare_folders(config)
        _check_site_recipients(config)
        password = self._password()
        # the site key first: its creation is the log's first entry on a new site
        signer = site_key(config, AuditLog(config.audit_folder, None))
        custody = Custody.of(config, signer)
        audit = custody.audit()
        # bound before any work starts: a port in use stops the start with one line
        page_socket = review_serving.listen(config) if config.review is not None else None
        rulebook = self._rules(audit)
        policy = self._policy
        journal = Journal(config.journal_path)
        run = journal.start_run(os.getpid())  # workers of any earlier run get no more jobs
        self._put_back(journal, policy)
        self._finish_quarantines(journal)
        _sweep_partials(config)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        storage = Storage.at_start(
            config.outbox,
            config.outbox_mount_point,
            (config.work, config.state, config.escrow_store),
        )
        page = None  # started before the workers: a page that fails to start stops nothing
        if page_socket is not None:
            page = review_serving.start(config, *page_socket, signer)
        self._workers = workers = WorkerPool(
            config, password, custody, run, config.workers, storage
        )
        intake = Intake(config, journal)
        intake.start()
        log.info(
            "started",
            inboxes=[str(i.path) for i in config.inboxes],
            outbox=str(config.outbox),
            workers=config.workers,
            quiet_seconds=intake.quiet_seconds,
        )
        link = None
        if config.queue is not None:  # jobs go to the broker; our workers keep what is local
            link = QueueLink(config, journal, custody, policy, run, password, self._quarantine)
            link.start()
        sweeps = SweepRunner(config, journal)
        sweeps.start_clean()  # fetches a kill cut short go back, before any run
        scheduler = SweepScheduler(config.sweeps, config.timezone, sweeps.scheduled).start()
        self._live = LiveSupervisor(config, password, custody)
        camera_thread = None
        if config.cameras.discover_seconds or config.cameras.streams:
            camera_thread = threading.Thread(target=self._camera_loop, name="cameras", daemon=True)
            camera_thread.start()
        notify.ready()  # Type=notify: systemctl start returns once intake and workers run
        next_scan = next_check = next_retention = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    next_scan = now + config.scan_seconds
                    intake.reconcile()
                intake.tick()
                if now >= next_check:
                    next_check = now + OVERDUE_CHECK_SECONDS
                    self._kill_overdue(journal, workers)
                    _settle(sweeps)
                if now >= next_retention:
                    next_retention = now + RETENTION_CHECK_SECONDS
                    self._retention(journal, custody)
                if dead := workers.replace_dead():
                    # only their own jobs go back: the others are still being worked on
                    self._put_back(journal, policy, dead)
                self._stop.wait(0.2)
        finally:
            # one deadline for everything below: systemd's TimeoutStopSec counts from here
            shutdown_ends = time.monotonic() + SHUTDOWN_SECONDS
            notify.stopping()
            if page is not None:
                page.stop()
            intake.stop()
            sweeps.stopping.set()  # a run under way stops at its next chunk
            scheduler.stop()
            if rulebook is not None:
                rulebook.stop()
            if camera_thread is not None:
                camera_thread.join(min(30, SHUTDOWN_SECONDS / 2))  # a round ends within its timeout
            self._live.stop()
            if link is not None:
                link.stop()  # orders already sent stay with the broker
            workers.stop(max(0.0, shutdown_ends - time.monotonic()))
            self._put_back(journal, policy, orderly=True)
            journal.close()
            _checkpoint(audit)
            log.info("stopped")
        return 0

    def _camera_loop(self) -> None:
        """Re-discover cameras every `discover_seconds`, and bring live masking in line with
        the cameras and the rules in force every LIVE_CHECK_SECONDS (rules reload, time
        windows open and close). A failing round is logged and retried; it never stops
        intake."""
        from privmask.daemon.cameras import inventory_path, live_streams, rediscover

        spec = self.config.cameras
        secrets_file = Path(spec.secrets) if spec.secrets else None
        next_discovery = 0.0
        while not self._stop.is_set():
            try:
                if spec.discover_seconds and time.monotonic() >= next_discovery:
                    next_discovery = time.monotonic() + spec.discover_seconds
                    rediscover(
                        inventory_path(self.config.state),
                        spec.interface,
                        spec.timeout,
                        secrets_file,
                    )
                self._live.update(live_streams(spec, self.config.state))
            except Exception as exc:  # the network, a camera, a secrets file
                log.error("camera_round_failed", error=str(exc))
            self._stop.wait(min(LIVE_CHECK_SECONDS, spec.discover_seconds or LIVE_CHECK_SECONDS))

    def _put_back(
        self,
        journal: Journal,
        policy: RetryPolicy,
        workers: list[str] | None = None,
        orderly: bool = False,
    ) -> None:
        """Interrupted jobs go back to the queue, or to quarantine once tried too often (a
        job the service itself stopped at shutdown keeps its tries)."""
        keep = self.config.queue is not None  # orders sent stay with the broker
        for job in journal.recover(policy, workers=workers, orderly=orderly, keep_queued=keep):
            log.info("job_put_back", job=job.id, state=str(job.state), attempts=job.attempts)
            self._clean_after(job)
            if job.state is JobState.QUARANTINED:
                self._quarantine(job.path, job.id, "interrupted", job.error or "interrupted")

    def _kill_overdue(self, journal: Journal, workers: WorkerPool) -> None:
        """Kill the worker of every job that stopped heartbeating or ran past its limit; the
        loop then puts the job back as a crash (a job without a worker process goes now)."""
        now = time.time()
        processes = workers.by_claim()
        try:
            claims = journal.claims()
        except sqlite3.Error as exc:  # looked at again at the next check
            log.error("overdue_check_failed", error=str(exc))
            return
        for claim in claims:
            why = overdue(claim.heartbeat, claim.deadline, now)
            if why is None:
                continue
            log.error("job_overdue", job=claim.job, worker=claim.worker, why=why)
            process = processes.get(claim.worker)
            if process is not None and process.is_alive():
                process.kill()  # a hung process may ignore SIGTERM, or be stopped
                process.join(5)
            else:
                self._put_back(journal, self._policy, [claim.worker])

    def _clean_after(self, job: Job) -> None:
        """What an interrupted try leaves: its work files, a partial escrow copy and package."""
        shutil.rmtree(self.config.work / str(job.id), ignore_errors=True)
        remove_partials(escrow.copy_path(self.config.escrow_store, f"{job.id:06d}"))
        if job.package is not None:
            remove_partials(Path(job.package))

    def _finish_quarantines(self, journal: Journal) -> None:
        """A crash between recording a quarantine and copying the clip: copy it now."""
        for stale in self.config.quarantine.glob(".*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        for job in journal.jobs(JobState.QUARANTINED, limit=1_000_000):
            if not (self.config.quarantine / f"{job.id:06d}").exists():
                self._quarantine(job.path, job.id, "quarantined", job.error or "quarantined")

    def _quarantine(self, source: str, job_id: int, code: str, reason: str) -> None:
        try:
            quarantine(
                Path(source),
                self.config.quarantine,
                job_id,
                code,
                reason,
                max_copy_bytes=self.config.intake_limits.max_bytes,
                group_readable=self.config.quarantine_group_readable,
                recipients=self.config.escrow_recipients,
            )
        except OSError as exc:  # recorded in the journal; the copy is retried at next start
            log.error("quarantine_copy_failed", job=job_id, error=str(exc))

    def _retention(self, journal: Journal, custody: Custody) -> None:
        """Delete the originals whose time is up; a failure is retried at the next check."""
        try:
            retention.sweep(journal, custody, self.config.quarantine)
        except (OSError, AuditError, sqlite3.Error) as exc:
            log.error("retention_failed", error=str(exc))

    def _password(self) -> bytes:
        return site_password(self.config)

    def _rules(self, audit: AuditLog) -> RuleBook | None:
        return rules_in_force(self.config, audit)


def site_password(config: Config) -> bytes:
    """The package password: configured, else generated once into the state folder."""
    if config.password is not None:
        return read_secret(config.password)
    generated = config.state / "package-password"
    if not generated.exists():
        # written whole and durable before it is used: packages depend on it
        secret = (secrets.token_urlsafe(24) + "\n").encode()
        with contextlib.suppress(FileExistsError):  # another start made it first
            files.write_file(generated, secret, mode=0o600, overwrite=False)
        log.warning("password_generated", file=str(generated))
    return read_secret(SecretSource("file", str(generated)))


def rules_in_force(config: Config, audit: AuditLog, *, watch: bool = True) -> RuleBook | None:
    """The rules in force, published for workers. A set whose rules need a model that is
    not installed, or name escrow recipients age cannot use, is refused (one line, exit 1),
    at start and at every reload. Each new set in force is audited with its hash.
    `watch`: reload on change (the daemon); else loaded once (`privmask sweep run`)."""
    from privmask.daemon.pipeline.setup import check_models

    audited: set[str] = set()

    def accept(ruleset: RuleSet) -> None:
        check_models(ruleset, config.models)
        check_recipients(ruleset)
        if ruleset.digest not in audited:
            audit.append(
                "rules_loaded",
                actor="daemon",
                details={"rule_set_sha256": ruleset.digest, "rules": len(ruleset.rules)},
            )
            audited.add(ruleset.digest)

    snapshots = config.state / "rulesets"
    if config.rules is None:
        parse_rules(DEFAULT_RULES, "<built-in>")
        builtin = snapshots / ".builtin"
        builtin.mkdir(parents=True, exist_ok=True)
        (builtin / "default.yaml").write_text(DEFAULT_RULES)
        ruleset = RuleSet.from_paths([builtin])
        accept(ruleset)
        publish(ruleset, snapshots)
        log.info("rules_builtin", rule="built-in-default (faces and people)")
        return None
    book = RuleBook(config.rules, snapshots=snapshots, accept=accept)
    return book.start() if watch else book


def _settle(sweeps: SweepRunner) -> None:
    """Sweep watermarks follow the packages; a failure is tried again at the next check."""
    try:
        sweeps.settle()
    except (OSError, sqlite3.Error) as exc:
        log.error("sweep_settle_failed", error=str(exc))


def check_recipients(ruleset: RuleSet) -> None:
    """Every rule's escrow recipients are keys (or files of keys) age can encrypt to."""
    for placed in ruleset.rules:
        entries = placed.rule.escrow
        if entries:
            try:
                age.parse_recipients(entries)
            except age.AgeError as exc:
                raise PlanError(f"rule {placed.rule.name}: escrow: {exc}") from None


def _check_site_recipients(config: Config) -> None:
    """The site's escrow recipients are usable now: better refused at start than at the
    first job, whose original would wait."""
    if config.escrow_recipients:
        try:
            age.parse_recipients(config.escrow_recipients)
        except age.AgeError as exc:
            raise ConfigError(f"escrow.recipients: {exc}") from None


def _checkpoint(audit: AuditLog) -> None:
    """Sign the audit log's head at shutdown, so truncation back past it shows."""
    try:
        audit.checkpoint()
    except AuditError as exc:
        log.error("audit_checkpoint_failed", error=str(exc))


def _prepare_folders(config: Config) -> None:
    """Create what privmask owns; a configured outbox, escrow store or inbox must exist
    already, since creating it would hide a share that is not mounted behind a local folder."""
    defaults = {p.absolute() for p in (DEFAULT_ROOT / n for n in ("outbox", "inbox", "escrow"))}
    for folder in (config.outbox, config.escrow_store, *[i.path for i in config.inboxes]):
        if folder in defaults:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise ConfigError(f"{folder} does not exist or is not a folder (is the share mounted?)")
    if config.outbox_mount_point and not os.path.ismount(config.outbox):
        # its device now would be the local disk's, and packages would land beneath the share
        raise ConfigError(f"outbox {config.outbox} is not a mount point (is the share mounted?)")
    for folder in (config.quarantine, config.work):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _sweep_partials(config: Config) -> None:
    """Temporary files left by a crash: never published, safe to remove."""
    shutil.rmtree(config.work, ignore_errors=True)  # no job is running yet
    config.work.mkdir(parents=True, exist_ok=True)
    # with a broker, workers elsewhere may be writing theirs now: only a day-old one goes
    older_than = time.time() - PARTIAL_AGE_SECONDS if config.queue is not None else None
    for folder in (config.outbox, config.escrow_store):
        for stale in folder.iterdir():
            own = stale.is_file() and files.OWN_PARTIAL.fullmatch(stale.name)
            if own and (older_than is None or stale.stat().st_mtime < older_than):
                stale.unlink(missing_ok=True)
    for held in (config.state / "rulesets", config.state / "review"):  # analyses half-written
        for stale in held.iterdir() if held.is_dir() else ():
            if files.OWN_PARTIAL.fullmatch(stale.name):
                files.remove(stale)
