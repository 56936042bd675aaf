"""`privmask status` of a site on many machines, as its operator reads it: the broker (never
its password) and its queue counts, the jobs with the broker and who works on each, and per
worker what it did, all from the journal (workers take no remote-control commands)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from privmask.daemon.config import load_config
from privmask.daemon.journal import Journal
from privmask.daemon.queue import status as queue_status

from broker import PASSWORD as BROKER_PASSWORD
from broker import Broker
from clips import write_clip
from cluster import Site, Worker
from harness import eventually, run_cli

pytestmark = pytest.mark.slow

MINUTE, DAY = 60.0, 86400.0
TAKING = "consumers (worker processes taking jobs)"


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


def later(s: Site, seconds: float) -> list[str]:
    """The queue part of status as it would read `seconds` from now, nothing else changed
    (how an operator finds a silent job, or a worker gone for days)."""
    spec = load_config(s.daemon.config).queue
    assert spec is not None
    with Journal(s.daemon.state / "journal.sqlite", upgrade=False) as journal:
        lines = queue_status.report(spec, journal, now=time.time() + seconds)
    print("\n".join(lines))
    return lines


def queue_part(lines: list[str]) -> list[str]:
    """The lines from the queue's own on (the journal's counts and jobs come first)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("queue  ")]
    assert len(starts) == 1, "\n".join(lines)
    return lines[starts[0] :]


def row(lines: list[str], *first: str) -> str:
    """The one line whose first words are `first` (a job's: `job N`; a worker's: its name)."""
    found = [line for line in lines if line.split()[: len(first)] == list(first)]
    assert len(found) == 1, "\n".join(lines)
    return found[0]


def header(s: Site, broker: Broker, queue: str | None = None) -> str:
    name = queue or yaml.safe_load(s.daemon.config.read_text())["queue"]["name"]
    return f"queue  {name} on amqp://privmask@127.0.0.1:{broker.port}/"


def journal_rows(s: Site, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(s.daemon.state / "journal.sqlite") as db:
        return db.execute(sql).fetchall()


def done_per_worker(s: Site) -> dict[str, int]:
    rows = journal_rows(s, "SELECT worker, count(*) FROM jobs WHERE state = 'done' GROUP BY worker")
    return {worker.removeprefix("queue:"): count for worker, count in rows}


def last_seen_order(s: Site) -> list[str]:
    """Workers by their latest job event or sign of life in the journal, latest first."""
    rows = journal_rows(
        s,
        "SELECT name, max(seen) AS latest FROM ("
        " SELECT substr(worker, 7) AS name, max(updated) AS seen FROM jobs"
        " WHERE worker LIKE 'queue:%' AND worker != 'queue:sent' GROUP BY worker"
        " UNION ALL SELECT name, heard FROM workers_heard"
        ") GROUP BY name ORDER BY latest DESC",
    )
    return [name for name, _ in rows]


def wait_until_taken(s: Site, job: int, workers: list[Worker], timeout: float = 120) -> Worker:
    """The worker the journal says took `job` (its `started` report applied)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holders = journal_rows(s, f"SELECT worker FROM jobs WHERE id = {job}")
        for worker in workers:
            if holders == [(f"queue:{worker.name}",)]:
                return worker
        time.sleep(0.1)
    raise AssertionError(f"no worker took job {job}")


def test_status_names_the_busy_worker_and_what_each_did(
    site, broker: Broker, tmp_path: Path
) -> None:
    s = site(broker)
    neighbour = site(broker, "neighbour")  # another site's worker on the same broker
    s.daemon.start()
    workers = [s.worker(), s.worker()]
    for worker in [*workers, neighbour.worker("--name", "neighbour@test")]:
        worker.wait_for("worker_ready")
    long = write_clip(tmp_path / "long.mp4", frames=500, size=(640, 360))  # 20 s of video
    shutil.copy(long, s.daemon.inbox / long.name)
    busy = wait_until_taken(s, 1, workers)

    lines = queue_part(status(s))
    assert lines[:3] == [
        header(s, broker),
        f"  the broker: 0 orders waiting, 2 {TAKING}, 0 dead letters",  # not the neighbour's
        "  the journal: 1 job with the broker",
    ]
    job = row(lines, "job", "1")
    assert job.split()[2:6] == [busy.name, "attempt", "1", "started"]
    assert job.endswith(f"ago  {s.daemon.inbox / long.name}")
    assert row(lines, busy.name).split()[1:4] == ["on", "job", "1"]
    assert not any("neighbour" in line for line in lines)

    # no word for 15 min is within the time limit of a 20 s clip (600 s + 20 s per second of
    # video, read from the file); for 30 min it is not: flagged, with what to do
    assert not any("silent" in line for line in later(s, 15 * MINUTE))
    flagged = later(s, 30 * MINUTE)
    assert row(flagged, "job", "1").endswith("  SILENT")
    hint = next(line for line in flagged if line.startswith("  ! job 1"))
    assert f"no word from {busy.name}" in hint and "its time limit of 16 min 40 s" in hint
    assert any("nothing is lost while the broker holds an order" in line for line in flagged)

    clips = [write_clip(tmp_path / f"cam{i}.mp4", frames=20 + i) for i in range(4)]
    for clip in clips:
        shutil.copy(clip, s.daemon.inbox / clip.name)
    s.daemon.wait_for("job_done", count=5, timeout=300)
    lines = queue_part(status(s))
    assert lines[2] == "  the journal: no job with the broker"
    done = done_per_worker(s)
    assert sum(done.values()) == 5
    order = last_seen_order(s)
    lines = queue_part(status(s))
    if order == last_seen_order(s):  # no sign of life came in between (one every 30 s)
        rows = [row(lines, name) for name in order]
        assert [lines.index(r) for r in rows] == sorted(lines.index(r) for r in rows)
    for name in order:
        line = row(lines, name)
        assert line.split()[1:5] == ["no", "job", str(done[name]), "done"]
        assert "last job event" in line and line.endswith("  up")

    # two days on, with no word from them: one line, most recently seen first (stopped
    # first: each says so once, then nothing, so the order holds while status runs)
    for worker in workers:
        assert worker.stop() == 0

    def stopped() -> bool:
        lines = queue_part(status(s))
        return all(" stopped " in row(lines, worker.name) for worker in workers)

    assert eventually(stopped, timeout=30)
    order = last_seen_order(s)
    lines = later(s, 2 * DAY)
    assert not any(line.split()[:1] == [name] for name in order for line in lines)
    named = ", ".join(f"{name} ({done[name]} done)" for name in order)
    assert lines[-1] == f"    nothing heard for a day: {named}"
    assert s.daemon.stop() == 0


def test_an_order_gone_from_the_queue_is_flagged_and_a_daemon_restart_sends_it_again(
    site, broker: Broker, tmp_path: Path
) -> None:
    """Someone purges the queue: the journal still has the job sent, the broker no order."""
    s = site(broker)
    s.daemon.start()
    clip = write_clip(tmp_path / "cam.mp4")
    shutil.copy(clip, s.daemon.inbox / clip.name)
    s.daemon.wait_for("job_sent")
    queue = yaml.safe_load(s.daemon.config.read_text())["queue"]["name"]
    lines = queue_part(status(s))
    assert lines[1] == f"  the broker: 1 order waiting, 0 {TAKING}, 0 dead letters"
    assert row(lines, "job", "1").split()[2:8] == ["not", "taken", "yet", "attempt", "1", "sent"]
    assert not any("SILENT" in line for line in later(s, 15 * MINUTE))  # waits for a worker

    broker.ctl("purge_queue", queue)
    assert not any("SILENT" in line for line in later(s, 5 * MINUTE))  # sent just now
    flagged = later(s, 15 * MINUTE)
    assert row(flagged, "job", "1").endswith("  SILENT")
    assert any(line.startswith("  ! job 1: sent 15 min") for line in flagged)
    assert any("restart the daemon" in line for line in flagged)  # what to do

    # the hint's remedy: sent again at start, no try used; a worker then does it
    assert s.daemon.stop() == 0
    s.daemon.start()
    worker = s.worker()
    s.daemon.wait_for("job_done")
    assert done_per_worker(s) == {worker.name: 1}
    assert journal_rows(s, "SELECT attempts FROM jobs WHERE id = 1") == [(1,)]
    worker.stop()
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
    lines = queue_part(lines)
    assert lines[:4] == [
        header(s, broker),
        "  the broker does not answer: [Errno 111] Connection refused",
        "  the journal: no job with the broker",
        "  workers (latest first):",
    ]
    assert row(lines, worker.name).split()[1:5] == ["no", "job", "1", "done"]  # the journal's
    assert len(lines) == 5
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
        header(s, broker, "t.nobody-declared-this"),
        "  the broker has no queue t.nobody-declared-this yet: the daemon declares it when it "
        "starts with this `queue:` section",
        "  the journal: no job with the broker",
        "  workers: none has taken a job or said it is there yet",
    ]


def test_status_tells_a_worker_that_is_up_from_one_that_stopped_or_is_gone(
    site, broker: Broker
) -> None:
    """Every `alive_seconds` each worker says it is there (a signed report), and once more
    when it stops: before it has taken any job, and after it is killed, status can tell."""
    s = site(broker)
    config = yaml.safe_load(s.daemon.config.read_text())
    config["queue"]["alive_seconds"] = 1
    s.daemon.config.write_text(yaml.safe_dump(config))
    s.daemon.start()
    idle, stopping, killed = s.worker(), s.worker(), s.worker()
    for worker in (idle, stopping, killed):
        worker.wait_for("worker_ready")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # each up: a beat late under load is not a failure
        lines = queue_part(status(s))
        found = [row_or_none(lines, w.name) for w in (idle, stopping, killed)]
        if all(line is not None and line.endswith("  up") for line in found):
            break
        time.sleep(0.5)
    for worker in (idle, stopping, killed):
        assert row(lines, worker.name).split()[1:] == ["no", "job", "0", "done", "no", "job",
                                                       "yet", "up"]  # fmt: skip
    assert stopping.stop() == 0
    killed.kill()

    def told() -> bool:  # three beats missed by the killed one; the idle one beats on
        lines = queue_part(status(s))
        return (
            row(lines, idle.name).endswith("  up")
            and " stopped " in row(lines, stopping.name)
            and " not heard from for " in row(lines, killed.name)
        )

    assert eventually(told, timeout=30)
    assert idle.stop() == 0
    assert s.daemon.stop() == 0


def row_or_none(lines: list[str], name: str) -> str | None:
    found = [line for line in lines if line.split()[:1] == [name]]
    return found[0] if found else None
