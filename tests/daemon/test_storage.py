"""Storage faults are waiting conditions: no job is tried while the outbox is full or its
share is gone, no try is used up, and nothing is written beneath an unmounted share.

The outbox is a real tmpfs mounted in a private user and mount namespace (unshare), which
the daemon runs inside; the test drives mounts from outside through trigger files the
namespace's shell waits for. Skipped where user namespaces are not available.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from clips import Custodian, write_clip
from harness import Daemon

# The shell that owns the namespace: mount the outbox, run the daemon (its command line
# follows the script's own arguments), carry out each step named in a trigger file, and
# on SIGTERM stop the daemon and wait for it.
NAMESPACE = r"""
outbox=$1; steps=$2; shift 2
mount -t tmpfs -o "size=$FIRST_SIZE" tmpfs "$outbox" || exit 77
"$@" & pid=$!
trap 'kill -TERM $pid' TERM
for step in 1 2; do
  while [ ! -e "$steps/$step" ]; do kill -0 $pid 2>/dev/null || exit 1; sleep 0.1; done
  sh -c "$(cat "$steps/$step")" && touch "$steps/$step.done"
done
wait $pid; wait $pid
"""


def have_namespaces() -> bool:
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    return probe.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_namespaces(), reason="no user and mount namespaces here"),
]


def start_in_namespace(
    daemon: Daemon, steps: Path, first_size: str, mounted: Path | None = None
) -> None:
    """Run the daemon with a tmpfs of `first_size` on `mounted` (its outbox by default)."""
    steps.mkdir()
    share = mounted or daemon.outbox
    wrapper = ["env", f"FIRST_SIZE={first_size}", "unshare", "--user", "--map-root-user",
               "--mount", "sh", "-c", NAMESPACE, "sh", str(share), str(steps)]  # fmt: skip
    daemon.start(wrapper=wrapper)


def step(steps: Path, number: int, command: str, timeout: float = 30) -> None:
    (steps / str(number)).write_text(command)
    deadline = time.monotonic() + timeout
    while not (steps / f"{number}.done").exists():
        assert time.monotonic() < deadline, f"step {number} ({command}) did not complete"
        time.sleep(0.05)


def test_a_full_outbox_is_waited_for_and_uses_no_try(daemon: Daemon, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    steps = tmp_path / "steps"
    start_in_namespace(daemon, steps, first_size="1m")  # far less than a job may need
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("clip_queued")
    waiting = daemon.wait_for("storage_waiting", count=2)  # logged at every check
    assert "MiB free" in waiting["reason"]
    assert not [e for e in daemon.events if e.get("event") == "job_started"]
    step(steps, 1, f'mount -o remount,size=512m "{daemon.outbox}"')  # a person frees space
    done = daemon.wait_for("job_done")
    assert done["attempt"] == 1  # waiting used up no try
    step(steps, 2, "true")
    assert daemon.stop() == 0


def test_an_unmounted_share_gets_no_package_beneath_it(daemon: Daemon, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    steps = tmp_path / "steps"
    start_in_namespace(daemon, steps, first_size="512m")
    step(steps, 1, f'umount "{daemon.outbox}"')  # the share goes away while the daemon runs
    shutil.copy(clip, daemon.inbox / "clip.mp4")
    daemon.wait_for("clip_queued")
    waiting = daemon.wait_for("storage_waiting", count=2)
    assert "not a mount point" in waiting["reason"]
    assert list(daemon.outbox.iterdir()) == []  # the bare mount point stays empty
    step(steps, 2, f'mount -t tmpfs -o size=512m tmpfs "{daemon.outbox}"')  # mounted again
    done = daemon.wait_for("job_done")
    assert done["attempt"] == 1
    assert daemon.stop() == 0
    assert list(daemon.outbox.iterdir()) == []  # the package went to the share, not beneath


def test_a_full_escrow_store_is_waited_for_and_nothing_is_published_meanwhile(
    tmp_path: Path, models_dir: Path, custodians: dict[str, Custodian]
) -> None:
    daemon = Daemon(tmp_path, models_dir, escrow={"recipients": [custodians["age"].recipient]})
    steps = tmp_path / "steps"
    start_in_namespace(daemon, steps, first_size="1m", mounted=daemon.escrow)
    try:
        shutil.copy(write_clip(tmp_path / "clip.mp4", frames=12), daemon.inbox / "clip.mp4")
        daemon.wait_for("clip_queued")
        waiting = daemon.wait_for("storage_waiting", count=2)
        assert str(daemon.escrow) in waiting["reason"] and "MiB free" in waiting["reason"]
        assert daemon.packages() == []  # no package without its escrow copy
        step(steps, 1, f'mount -o remount,size=512m "{daemon.escrow}"')
        assert daemon.wait_for("job_done")["attempt"] == 1
        step(steps, 2, "true")
    finally:
        assert daemon.stop() == 0
    (package,) = daemon.packages()
    assert daemon.read(package)[1]["escrow"]["file"] == "000001.age"
