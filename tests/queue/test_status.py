"""`privmask status` of a site on many machines, as its operator reads it: the broker (never
its password), the queue, which worker runs what, and what each did (the journal)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broker import PASSWORD as BROKER_PASSWORD
from broker import Broker
from clips import write_clip
from cluster import Site, Worker
from harness import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path: Path, models_dir: Path, request: pytest.FixtureRequest) -> Iterator:  # type: ignore[type-arg]
    """A maker of sites under tmp_path (each in its own folder, with its own queue)."""
    made: list[Site] = []

    def make(broker: Broker, name: str = "site") -> Site:
        root = tmp_path / name
        root.mkdir()
        queue = {"name": f"t.{name}.{request.node.name[:30]}"}
        made.append(Site(root, models_dir, broker, queue=queue))
        return made[-1]

    yield make
    for created in made:
        created.close()


def status(s: Site, config: Path | None = None) -> list[str]:
    """`privmask status --config` as the operator runs it: exit 0, nothing on stderr, no
    password anywhere; its lines."""
    began = time.monotonic()
    result = run_cli(config or s.daemon.config, "status")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stderr == "", output  # no warning, no traceback, no log line
    assert BROKER_PASSWORD not in output
    print(f"{result.stdout}({time.monotonic() - began:.1f} s)")
    return result.stdout.splitlines()


def worker_line(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.split()[:2] == ["worker", name]]
    assert len(found) == 1, "\n".join(lines)
    return found[0]


def queue_part(lines: list[str]) -> list[str]:
    """The lines from the queue's own on (the journal's counts and jobs come first)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("queue  ")]
    assert len(starts) == 1, "\n".join(lines)
    return lines[starts[0] :]


def queue_name(s: Site) -> str:
    return str(yaml.safe_load(s.daemon.config.read_text())["queue"]["name"])


def done_per_worker(s: Site) -> dict[str, int]:
    with sqlite3.connect(s.daemon.state / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT worker, count(*) FROM jobs WHERE state = 'done' GROUP BY worker"
        ).fetchall()
    return {worker.removeprefix("queue:"): count for worker, count in rows}


def first_to_start(workers: list[Worker], timeout: float = 120) -> Worker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.events("job_started"):
                return worker
        time.sleep(0.1)
    raise AssertionError("no worker started the job")


def test_status_names_the_workers_what_they_run_and_what_they_did(
    site, broker: Broker, tmp_path: Path
) -> None:
    s = site(broker)
    neighbour = site(broker, "neighbour")  # another site's worker on the same broker
    s.daemon.start()
    workers = [s.worker(), s.worker()]
    for worker in [*workers, neighbour.worker("--name", "neighbour@test")]:
        worker.wait_for("worker_ready")
    long = write_clip(tmp_path / "long.mp4", frames=500, size=(640, 360))
    shutil.copy(long, s.daemon.inbox / long.name)
    busy = first_to_start(workers)

    lines = queue_part(status(s))
    assert lines[0] == f"queue  {queue_name(s)} on amqp://privmask@127.0.0.1:{broker.port}/"
    taking = "2 workers taking jobs; 0 dead letters"  # not the neighbour's worker
    assert lines[1] == f"  1 job with the broker (0 waiting); {taking}"
    assert worker_line(lines, busy.name).split()[2:4] == ["running", "job-1-try-1"]
    other = next(w for w in workers if w is not busy)
    assert worker_line(lines, other.name).split()[2] == "idle"
    assert not any("neighbour@test" in line for line in lines)

    clips = [write_clip(tmp_path / f"cam{i}.mp4", frames=20 + i) for i in range(4)]
    for clip in clips:
        shutil.copy(clip, s.daemon.inbox / clip.name)
    s.daemon.wait_for("job_done", count=5, timeout=300)
    lines = status(s)
    done = done_per_worker(s)
    assert sum(done.values()) == 5
    for worker in workers:
        line = worker_line(lines, worker.name)
        assert line.split()[2] == "idle"
        assert line.endswith(f"  {done.get(worker.name, 0)} done")

    # a worker stopped for good is no longer a row of its own, but its jobs still count
    stopped = max(workers, key=lambda w: done.get(w.name, 0))
    assert stopped.stop() == 0
    lines = queue_part(status(s))
    assert not any(line.split()[:2] == ["worker", stopped.name] for line in lines)
    assert lines[-1] == (
        f"not answering now (stopped, or cut off from the broker): {stopped.name} "
        f"({done[stopped.name]} done)"
    )
    for worker in workers:
        assert worker.stop() == 0
    assert s.daemon.stop() == 0


def test_status_with_the_broker_down_says_so_in_one_line_and_shows_the_journal(
    site, make_broker, tmp_path: Path
) -> None:
    broker = make_broker()  # stopped: not the module's
    s = site(broker)
    s.daemon.start()
    worker = s.worker()
    clip = write_clip(tmp_path / "cam.mp4")
    shutil.copy(clip, s.daemon.inbox / clip.name)
    s.daemon.wait_for("job_done")
    broker.stop()

    lines = status(s)
    assert lines[0].startswith("queued: 0  processing: 0  done: 1")  # the journal still speaks
    assert queue_part(lines) == [
        f"queue  {queue_name(s)} on amqp://privmask@127.0.0.1:{broker.port}/",
        "  the broker does not answer: [Errno 111] Connection refused",
        "  0 jobs with the broker (journal)",
        f"worker  {worker.name}  1 done",  # known from the journal
    ]
    # the worker, trying to reach the broker again, never shows its password either
    deadline = time.monotonic() + 60
    while "Cannot connect" not in worker.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Cannot connect" in worker.log.read_text()
    assert BROKER_PASSWORD not in worker.log.read_text()
    assert "CPendingDeprecationWarning" not in worker.log.read_text()  # a setting chosen
    assert BROKER_PASSWORD not in "".join(s.daemon.lines)
    worker.kill()
    assert s.daemon.stop() == 0


def test_status_of_a_queue_no_daemon_has_declared_says_so(
    site, broker: Broker, tmp_path: Path
) -> None:
    s = site(broker)
    s.daemon.start()
    assert s.daemon.stop() == 0
    config = yaml.safe_load(s.daemon.config.read_text())
    config["queue"]["name"] = "t.nobody-declared-this"  # e.g. a typo in the status host's copy
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(config))
    assert queue_part(status(s, other)) == [
        f"queue  t.nobody-declared-this on amqp://privmask@127.0.0.1:{broker.port}/",
        "  the broker has no queue t.nobody-declared-this yet: the daemon declares it when it "
        "starts with this `queue:` section",
        "  0 jobs with the broker (journal)",
    ]
