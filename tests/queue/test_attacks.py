"""Attacks on many machines (issue 15 review): messages that verify against the site key but
are not this try's (a sibling daemon's, an earlier try's, a compromised worker's), and a
worker that cannot verify its orders. Each test says what a user would check afterwards:
the journal, the escrow table, the audit log, whether a job is left with the broker."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from privmask.adapters.minisign import SecretKey
from privmask.daemon.queue.app import make_app
from privmask.daemon.queue.protocol import Report, Topology, signed
from privmask.daemon.queue.settings import QueueSpec, broker_url

from broker import PASSWORD as BROKER_PASSWORD
from broker import Broker
from clips import write_clip
from cluster import Site

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path: Path, models_dir: Path, broker: Broker, request: pytest.FixtureRequest):
    made: list[Site] = []

    def make(**settings: Any) -> Site:
        queue = {"name": f"a.{request.node.name[:40]}", **settings.pop("queue", {})}
        created = Site(tmp_path, models_dir, broker, queue=queue, **settings)
        made.append(created)
        return created

    yield make
    for created in made:
        created.close()


def _rows(site: Site, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(site.daemon.state / "journal.sqlite") as db:
        return db.execute(sql).fetchall()


def _inject(site: Site, *reports: dict[str, Any]) -> None:
    """Publish `reports` on the site's report queue as anyone with the broker's password can,
    then an unsigned marker; returns once the daemon has dropped the marker, so everything
    before it has been applied (one consumer, one queue, in order)."""
    spec = QueueSpec.model_validate(yaml.safe_load(site.daemon.config.read_text())["queue"])
    app = make_app(spec, broker_url(spec.broker, BROKER_PASSWORD.encode()))
    topology = Topology(spec.name, spec.delivery_limit)
    dropped = len([e for e in site.daemon.events if e.get("event") == "queue_message_dropped"])
    with app.producer_or_acquire() as producer:
        for body in (*reports, {"marker": True}):
            producer.publish(
                body,
                exchange=topology.exchange,
                routing_key=topology.reports.routing_key,
                serializer="json",
            )
    site.daemon.wait_for("queue_message_dropped", count=dropped + 1, timeout=60)


def _sent_and_waiting(site: Site, tmp_path: Path) -> None:
    """One clip taken in and sent to the broker, where no worker takes it yet."""
    clip = write_clip(tmp_path / "cam.mp4")
    site.daemon.start()
    shutil.copy(clip, site.daemon.inbox / clip.name)
    site.daemon.wait_for("job_sent")


def test_a_done_report_of_a_sibling_daemon_does_not_finish_this_job(site, tmp_path: Path) -> None:
    """Two daemons of one site (one site key, two queues on one broker), or one daemon whose
    state was reset: job ids repeat. A genuine `done` for the other's job 1, copied into this
    daemon's report queue, must not record this clip as done with a package of another clip
    (the daemon never opens the package it records)."""
    s = site()
    _sent_and_waiting(s, tmp_path)
    theirs = Report(
        "done", 1, 1, "0123456789abcdef", "w0@other-daemon",
        {"package": "/srv/other/outbox/000001.zip", "ruleset": "ab" * 32},
    )  # fmt: skip
    _inject(s, signed(theirs.to_message(), s.key))
    state, output = _rows(s, "SELECT state, output FROM jobs WHERE id = 1")[0]
    assert (state, output) != ("done", "/srv/other/outbox/000001.zip")
    assert state == "processing"
    # the same claim naming this try (a worker that lies, or a replay of this try's own
    # report of another package): the daemon opens the package it plans for the job
    current = _rows(s, "SELECT try_id FROM jobs WHERE id = 1")[0][0]
    lying = Report(
        "done", 1, 1, current, "w0@test",
        {"package": "/srv/other/outbox/000001.zip", "ruleset": "ab" * 32},
    )  # fmt: skip
    _inject(s, signed(lying.to_message(), s.key))
    refused = s.daemon.wait_for("report_refused")
    state, output = _rows(s, "SELECT state, output FROM jobs WHERE id = 1")[0]
    assert s.daemon.stop() == 0
    assert refused["kind"] == "done"
    assert state != "done" and output is None


@pytest.mark.parametrize(
    "copy_job, copy_file",
    [
        ("000001", "000001.age"),  # an earlier try's copy, or none at all: not in the store
        ("000777", "../../elsewhere/x.age"),  # another job's row, a name outside the store
    ],
)
def test_a_sealed_report_records_only_a_copy_that_is_in_the_store_for_its_own_job(
    site, tmp_path: Path, copy_job: str, copy_file: str
) -> None:
    """`sealed` is applied whatever the job's state or try, and its copy is taken as written:
    any job's escrow row (INSERT OR REPLACE: it replaces the real one, resurrects a deleted
    one) and an `escrow_written` audit entry for a copy that is not there."""
    s = site()
    _sent_and_waiting(s, tmp_path)
    copy = {
        "job": copy_job, "file": copy_file, "sha256": "00" * 32, "bytes": 1,
        "source_sha256": "11" * 32, "written": 1.0, "expires": 2.0, "deleted": None,
        "rule": "site", "ruleset": "ab" * 32, "recorded": None,
    }  # fmt: skip
    current = _rows(s, "SELECT try_id FROM jobs WHERE id = 1")[0][0]
    replayed = Report("sealed", 1, 1, current, "w0@test", {"copy": copy, "recipients": 1})
    _inject(s, signed(replayed.to_message(), s.key))
    rows = _rows(s, "SELECT job, file FROM escrow")
    assert s.daemon.stop() == 0
    assert rows == []  # nothing was sealed for any job here
    assert not [e for e in s.daemon.audit() if e.get("event") == "escrow_written"]


def test_a_worker_that_cannot_verify_an_order_does_not_lose_the_job(site, tmp_path: Path) -> None:
    """A worker with another site key (a key rotated on the daemon host, a copy-paste
    mistake) cannot verify its orders. The job must not be lost (an order acknowledged and
    gone), nor quarantined for the worker's fault (three refusals in seconds were three
    failed tries): the worker says so, the job waits for a worker that can take it, and one
    that can, does, on the job's first try."""
    s = site()
    other = s.root / "other.key"
    other.write_bytes(SecretKey.generate().to_bytes())
    other.chmod(0o600)
    wrong = s.worker(signing_key={"file": str(other)})
    _sent_and_waiting(s, tmp_path)
    wrong.wait_for("order_refused")
    refused = s.daemon.wait_for("order_refused_by_worker", timeout=60)
    assert refused["worker"] == wrong.name
    assert "site key" in refused["reason"]
    assert wrong.stop() == 0
    right = s.worker()
    s.daemon.wait_for("job_done")
    assert right.stop() == 0
    assert s.daemon.stop() == 0
    assert _rows(s, "SELECT state, attempts FROM jobs WHERE id = 1") == [("done", 1)]
    assert not [e for e in s.daemon.events if e.get("event") == "job_failed"]
    # the job's history says what happened (it is read by a person, in privmask status)
    history = [d for (d,) in _rows(s, "SELECT detail FROM job_events WHERE job_id = 1")]
    back = [d for d in history if wrong.name in d]
    assert back and all(d.startswith("refused by a worker: ") for d in back), history
