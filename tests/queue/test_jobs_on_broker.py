"""Redaction jobs on many machines: a real daemon sends them through a real RabbitMQ to real
`privmask worker` processes. Each clip is packaged exactly once, whatever happens to a
worker or to the broker, and the journal on the daemon host says who did what."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from privmask.adapters.minisign import SecretKey
from privmask.adapters.models import sha256_of
from privmask.daemon.queue.app import make_app
from privmask.daemon.queue.protocol import TASK_NAME, Order, Report, Topology, signed
from privmask.daemon.queue.settings import QueueSpec, broker_url

from broker import PASSWORD as BROKER_PASSWORD
from broker import Broker
from clips import Custodian, write_clip
from cluster import Site
from harness import run_cli

pytestmark = pytest.mark.slow

FACES = "version: 1\nrules:\n  - name: site\n    targets: {face: {}, person: {}}\n"


@pytest.fixture
def site(tmp_path: Path, models_dir: Path, broker: Broker, request: pytest.FixtureRequest):
    """A site on the module's broker, with a queue of its own (tests share the broker)."""
    made: list[Site] = []

    def make(on: Broker | None = None, **settings: object) -> Site:
        queue = {"name": f"t.{request.node.name[:40]}", **settings.pop("queue", {})}  # type: ignore[dict-item]
        created = Site(tmp_path, models_dir, on or broker, queue=queue, **settings)
        made.append(created)
        return created

    yield make
    for created in made:
        created.close()


def drop(site: Site, clips: list[Path]) -> None:
    for clip in clips:
        shutil.copy(clip, site.daemon.inbox / clip.name)


def journal_rows(site: Site, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(site.daemon.state / "journal.sqlite") as db:
        return db.execute(sql).fetchall()


def test_a_batch_on_two_workers_is_packaged_once_each_with_custody_on_the_daemon_host(
    site, tmp_path: Path, custodians: dict[str, Custodian]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(FACES + "    source: delete\n")
    recipients = [custodians["age"].recipient]
    s = site(rules=str(rules), escrow={"recipients": recipients})
    clips = [write_clip(tmp_path / f"cam{i}.mp4", frames=20 + i) for i in range(6)]
    s.daemon.start()
    workers = [s.worker(), s.worker()]
    for worker in workers:
        worker.wait_for("worker_ready")
    drop(s, clips)
    s.daemon.wait_for("job_done", count=6)
    s.daemon.wait_for("source_deleted", count=6)
    for worker in workers:
        assert worker.stop() == 0
    assert s.daemon.stop() == 0

    packages = s.daemon.packages()
    assert len(packages) == 6
    inputs = sorted(s.read(p)[1]["input"]["sha256"] for p in packages)
    assert inputs == sorted(sha256_of(c) for c in clips)
    # the journal on the daemon host: every job done, and by which worker
    done = journal_rows(s, "SELECT state, worker FROM jobs ORDER BY id")
    assert {state for state, _ in done} == {"done"}
    assert {worker for _, worker in done} <= {"queue:w0@test", "queue:w1@test"}
    # custody applied where the audit log and the inbox are: each original escrowed (by a
    # worker into the shared store, recorded by the daemon) before its source was deleted
    audit = s.daemon.audit()
    escrowed = [e for e in audit if e["action"] == "escrow_written"]
    assert sorted(e["details"]["source_sha256"] for e in escrowed) == inputs
    assert {e["actor"] for e in escrowed} <= {"worker w0@test", "worker w1@test"}
    actions = [e["action"] for e in audit]
    assert actions.index("escrow_written") < actions.index("source_deleted")
    assert list(s.daemon.inbox.iterdir()) == []
    assert len(list(s.daemon.escrow.glob("*.age"))) == 6
    assert s.daemon.leftovers() == []


def test_a_worker_killed_mid_job_gives_it_to_another_and_it_is_packaged_once(
    site, tmp_path: Path
) -> None:
    s = site()
    s.daemon.start()
    first = s.worker()
    drop(s, [write_clip(tmp_path / "long.mp4", frames=500, size=(640, 360))])
    first.wait_for("job_started")
    first.kill()  # kill -9 mid-job: its order goes back to the queue
    second = s.worker()
    s.daemon.wait_for("job_done")
    assert second.events("job_done")  # redacted again by the other worker, from the start
    assert second.stop() == 0
    assert s.daemon.stop() == 0
    assert len(s.daemon.packages()) == 1
    assert s.daemon.leftovers() == []  # the killed try's partial package is gone
    events = [d for (d,) in journal_rows(s, "SELECT detail FROM job_events WHERE job_id = 1")]
    assert "attempt 1 on w0@test" in events and "attempt 1 on w1@test" in events


def test_the_broker_restarted_mid_batch_loses_nothing_and_doubles_nothing(
    site, make_broker, tmp_path: Path
) -> None:
    broker = make_broker()  # restarted: not the module's
    s = site(broker)
    clips = [
        write_clip(tmp_path / f"cam{i}.mp4", frames=120 + i, size=(640, 360)) for i in range(5)
    ]
    s.daemon.start()
    workers = [s.worker(), s.worker()]
    drop(s, clips)
    s.daemon.wait_for("job_done")
    broker.restart()
    s.daemon.wait_for("job_done", count=5, timeout=300)
    for worker in workers:
        assert worker.stop() == 0
    assert s.daemon.stop() == 0
    packages = s.daemon.packages()
    assert len(packages) == 5
    assert sorted(s.read(p)[1]["input"]["sha256"] for p in packages) == sorted(
        sha256_of(c) for c in clips
    )
    assert journal_rows(s, "SELECT count(*) FROM jobs WHERE state = 'done'") == [(5,)]
    assert s.events("thread_crashed") == []  # a worker's lease saw its connection go quietly


def test_a_job_longer_than_the_brokers_consumer_timeout_is_redacted_once(
    site, make_broker, tmp_path: Path
) -> None:
    # 3 s plays RabbitMQ's default 30 min: the broker takes the order back from the busy
    # worker and delivers it again; the second delivery waits on the job's lease
    broker = make_broker(consumer_timeout_ms=3000)
    s = site(broker)
    s.daemon.start()
    workers = [s.worker(), s.worker()]
    for worker in workers:
        worker.wait_for("worker_ready")
    drop(s, [write_clip(tmp_path / "long.mp4", frames=500, size=(640, 360))])
    s.daemon.wait_for("job_done")
    redelivered = [w for w in workers if w.events("job_running_elsewhere")]
    assert redelivered, "the broker did not take the order back: the test proves nothing"
    redelivered[0].wait_for("job_found_published")
    for worker in workers:
        assert worker.stop() == 0
    assert s.daemon.stop() == 0
    assert len(s.daemon.packages()) == 1
    assert len(s.events("job_done")) == 1  # redacted once, by one worker
    for worker in workers:  # Celery's own records too are JSON events, without tracebacks
        raw = [x for x in worker.log.read_text().splitlines() if x.startswith(("[", "Trace"))]
        assert raw == [], raw[:3]


def test_a_clip_held_for_review_stays_on_the_daemon_host(site, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.yaml").write_text(FACES + "    review: required\n")
    s = site(rules=str(rules))
    s.daemon.start()
    worker = s.worker()
    worker.wait_for("worker_ready")
    drop(s, [write_clip(tmp_path / "cam.mp4")])
    s.daemon.wait_for("job_kept_local")
    s.daemon.wait_for("job_held_for_review")  # analysed by the daemon's own worker
    assert worker.stop() == 0
    assert s.daemon.stop() == 0
    assert worker.events("job_started") == []  # no unmasked analysis on another machine
    assert list((s.daemon.state / "review").iterdir())


def test_a_clip_its_workers_keep_dying_on_is_quarantined(site, tmp_path: Path) -> None:
    s = site(queue={"delivery_limit": 1}, retry={"max_attempts": 1, "backoff_seconds": 0.5})
    s.daemon.start()
    drop(s, [write_clip(tmp_path / "deadly.mp4", frames=500, size=(640, 360))])
    for _ in range(2):  # the first death gives it back, the second is past the limit
        worker = s.worker()
        worker.wait_for("job_started")
        worker.kill()
    failed = s.daemon.wait_for("job_failed")
    assert failed["state"] == "quarantined"
    assert "lost" in failed["reason"]
    assert (s.daemon.quarantine / "000001").is_dir()
    assert s.daemon.stop() == 0
    assert s.daemon.packages() == []


def test_orders_and_reports_not_signed_by_the_site_key_are_refused(site, tmp_path: Path) -> None:
    s = site()
    s.daemon.start()
    worker = s.worker()
    worker.wait_for("worker_ready")
    clip = write_clip(tmp_path / "cam.mp4")
    drop(s, [clip])
    s.daemon.wait_for("job_done")
    # someone with the broker's password but not the site key: an order to redact a file
    # under no rule at all, and a report that a job was done
    config = yaml.safe_load(s.daemon.config.read_text())
    spec = QueueSpec.model_validate(config["queue"])
    app = make_app(spec, broker_url(spec.broker, BROKER_PASSWORD.encode()))
    topology = Topology(spec.name, spec.delivery_limit)
    other = SecretKey.generate()
    order = Order(
        job=99, attempt=1, try_id="0" * 16, queue=spec.name, path=str(tmp_path / "cam.mp4"),
        sha256=sha256_of(clip),
        size=clip.stat().st_size, camera=None, folder=str(tmp_path), taken=(str(clip), 1, 1, 1),
        swept=None, timezone="UTC", recipients=(), retention_days=None, duration=1.0,
        ruleset="0" * 64, rules=(), created=0.0,
    )  # fmt: skip
    app.send_task(TASK_NAME, args=[signed(order.to_message(), other)], queue=spec.name)
    current = journal_rows(s, "SELECT try_id FROM jobs WHERE id = 1")[0][0]
    report = Report("done", 1, 1, current, "w9@evil", {"package": "/x.zip", "ruleset": "0" * 64})
    with app.producer_or_acquire() as producer:
        producer.publish(
            signed(report.to_message(), other),
            exchange=topology.exchange,
            routing_key=topology.reports.routing_key,
            serializer="json",
        )
    refused = worker.wait_for("order_refused")
    dropped = s.daemon.wait_for("queue_message_dropped")
    assert worker.stop() == 0
    assert s.daemon.stop() == 0
    assert "signature" in refused["reason"].lower() or "key" in refused["reason"].lower()
    assert "signed by key" in dropped["error"]  # dropped for its signature, not its content
    assert len(s.daemon.packages()) == 1  # only the genuine one
    assert journal_rows(s, "SELECT output FROM jobs WHERE id = 1")[0][0] != "/x.zip"


@pytest.mark.parametrize("where", ["local", "queue"])
def test_a_chunk_fetched_from_a_recorder_is_redacted_where_the_site_says(
    site, tmp_path: Path, models_dir: Path, where: str
) -> None:
    """A recorder's chunk lands in the daemon host's state folder: its own workers redact it
    unless the site exports that folder to the workers (`recorder_chunks: queue`)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "sweeps"))  # the sweeps' recorder fakes
    from isapi_peer import nvr_sweep, one_chunk_recorder

    recorder, secret = one_chunk_recorder(tmp_path)
    with recorder.running():
        nvr = nvr_sweep(recorder, secret)
        s = site(queue={"recorder_chunks": where}, sweeps=[nvr], timezone="UTC")
        s.daemon.start()
        worker = s.worker()
        worker.wait_for("worker_ready")
        window = ("--from", "2026-03-01T10:00:00", "--to", "2026-03-01T10:02:00")
        swept = run_cli(s.daemon.config, "sweep", "run", "nvr", *window, timeout=300)
        assert swept.returncode == 0, swept.stderr
        assert worker.stop() == 0
        assert s.daemon.stop() == 0
    assert len(s.daemon.packages()) == 1
    assert bool(worker.events("job_done")) == (where == "queue")


def test_a_worker_on_another_clock_names_the_package_as_the_daemon_does(
    site, tmp_path: Path
) -> None:
    """Package names carry the recording time on the site's clock: a worker whose host is in
    another zone must not name it otherwise (the daemon would not find the package)."""
    s = site(timezone="Europe/Berlin")
    s.daemon.start()
    worker = s.worker(timezone="America/New_York")
    clip = write_clip(tmp_path / "cam.mp4")
    when = datetime(2026, 3, 1, 9, 15, tzinfo=UTC).timestamp()  # 10:15 in Berlin
    os.utime(clip, (when, when))
    shutil.copy2(clip, s.daemon.inbox / clip.name)  # its time: when intake saw it written
    s.daemon.wait_for("job_done")
    assert worker.stop() == 0
    assert s.daemon.stop() == 0
    (package,) = s.daemon.packages()
    assert "_20260301_101500_" in package.name  # on Berlin's clock, not New York's (04:15)


def test_a_worker_without_the_models_leaves_the_clip_to_another_without_using_a_try(
    site, tmp_path: Path
) -> None:
    s = site()
    s.daemon.start()
    empty = tmp_path / "no-models"
    empty.mkdir()
    # models are looked for in the config's folder, $PRIVMASK_MODELS, the user's store
    broken = s.worker(models=str(empty), env={"PRIVMASK_MODELS": str(empty), "HOME": str(empty)})
    broken.wait_for("worker_ready")
    drop(s, [write_clip(tmp_path / "cam.mp4")])
    waiting = broken.wait_for("job_waiting_for_this_worker")
    assert "model" in waiting["reason"].lower()
    healthy = s.worker()
    assert broken.stop() == 0
    s.daemon.wait_for("job_done")
    assert healthy.stop() == 0
    assert s.daemon.stop() == 0
    assert len(s.daemon.packages()) == 1
    assert journal_rows(s, "SELECT state, attempts FROM jobs") == [("done", 1)]
    history = [d for (d,) in journal_rows(s, "SELECT detail FROM job_events WHERE job_id = 1")]
    assert any(d.startswith(f"left to another worker by {broken.name}: ") for d in history)


def test_the_sites_custodians_apply_whatever_a_workers_config_says(
    site, tmp_path: Path, custodians: dict[str, Custodian]
) -> None:
    """A worker's config without `escrow.recipients` (as a worker.yaml easily is): each
    original is still sealed to the site's custodians before its package is made."""
    s = site(escrow={"recipients": [custodians["age"].recipient]})
    s.daemon.start()
    worker = s.worker(escrow={"store": str(s.daemon.escrow)})
    clip = write_clip(tmp_path / "cam.mp4")
    drop(s, [clip])
    s.daemon.wait_for("job_done")
    assert worker.stop() == 0
    assert s.daemon.stop() == 0
    (package,) = s.daemon.packages()
    assert s.read(package)[1]["escrow"]["file"] == "000001.age"
    sealed = s.daemon.escrow / "000001.age"
    opened = subprocess.run(
        ["age", "-d", "-i", str(custodians["age"].identity), str(sealed)],
        capture_output=True, check=True,
    )  # fmt: skip
    assert opened.stdout == clip.read_bytes()
