"""`privmask status` on a real journal: what an operator sees of the jobs in progress."""

from __future__ import annotations

import re
import time
from pathlib import Path

from test_cli import privmask

from privmask.daemon.journal import FileIdentity, Journal
from privmask.daemon.retry import RetryPolicy


def test_status_shows_how_long_a_running_job_has_run_and_its_attempt(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with Journal(state / "journal.sqlite") as journal:
        clip = FileIdentity(str(tmp_path / "inbox" / "CAM1_gate.mp4"), 1000, 1, 1)
        journal.enqueue(clip, "ab" * 32, str(tmp_path / "inbox"), camera="CAM1")
        # a worker took it 125 s ago, as its second try
        journal.claim("worker-1", now=time.time() - 300)
        job = journal.jobs()[0]
        journal.fail(job.id, "crashed", RetryPolicy(backoff_seconds=0), now=time.time() - 200)
        journal.claim("worker-2", now=time.time() - 125)
    done = privmask("status", "--state", state)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("processing")]
    assert "attempt 2" in line and "CAM1_gate.mp4" in line
    # the second try started 125 s ago (the first one's start does not count)
    assert re.search(r"running for 2 min [0-5][0-9] s", line), line
