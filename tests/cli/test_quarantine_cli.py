"""`privmask quarantine list` and `privmask retry JOB` on a real journal, with and without a
running daemon: what an operator sees of the clips set aside, and how one is put back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import assert_one_clear_line, privmask

from privmask.adapters.models import sha256_of
from privmask.daemon.journal import FileIdentity, Job, JobState, Journal

from clips import write_clip
from harness import Daemon, eventually, run_cli

FACES = "version: 1\nrules:\n  - {name: faces, targets: {face: {}}}\n"
YUNET = "face_detection_yunet_2023mar.onnx"


@pytest.fixture
def no_other_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models only in the folder the configuration names: no $PRIVMASK_MODELS, an empty
    user store (the daemon and the CLI inherit this environment)."""
    monkeypatch.delenv("PRIVMASK_MODELS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.mark.slow
@pytest.mark.usefixtures("no_other_models")
def test_a_clip_quarantined_for_a_missing_model_is_listed_then_retried_once_installed(
    tmp_path: Path, models_dir: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(models_dir / YUNET, models / YUNET)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "faces.yaml").write_text(FACES)
    daemon = Daemon(tmp_path, models, rules=str(rules))
    clip = write_clip(tmp_path / "clip.mp4", frames=10)
    try:
        daemon.start()
        (models / YUNET).unlink()  # the model goes missing while the daemon runs
        source = daemon.inbox / "CAM1_gate.mp4"
        shutil.copy(clip, source)
        job = daemon.wait_for("job_failed", state="quarantined")["job"]
        # the worker copies the clip beside its reason just after it says so
        assert eventually(lambda: (daemon.quarantine / f"{job:06d}").is_dir())

        listed = run_cli(daemon.config, "quarantine", "list")
        assert listed.returncode == 0, listed.stderr
        first, *details = listed.stdout.splitlines()
        assert first.startswith(f"job {job}  ") and "retries_exhausted" in first
        assert "copy kept" in first
        assert f"  source: {source}" in details
        assert any(line.startswith("  reason: ") and "yunet" in line for line in details)
        (entry,) = json.loads(run_cli(daemon.config, "quarantine", "list", "--json").stdout)
        assert entry["job"] == job and entry["code"] == "retries_exhausted"
        assert "is not installed" in entry["reason"] and entry["source"] == str(source)
        assert Path(entry["copy"]).read_bytes() == clip.read_bytes()

        shutil.copy(models_dir / YUNET, models / YUNET)  # installed again
        retried = run_cli(daemon.config, "retry", str(job))
        assert retried.returncode == 0, retried.stderr
        assert f"job {job} queued again" in retried.stdout
        daemon.wait_for("job_done", job=job)
        (package,) = daemon.packages()
        assert daemon.read(package)[1]["input"]["sha256"] == sha256_of(clip)
        assert daemon.stop() == 0
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
    with Journal(daemon.state / "journal.sqlite") as journal:
        assert journal.get(job).state is JobState.DONE
        assert (JobState.QUEUED.value, "retried by operator") in [
            (state, detail) for _, state, detail in journal.events(job)
        ]
    # nothing quarantined any more, and the unredacted copy is gone with its reason
    assert run_cli(daemon.config, "quarantine", "list").stdout == "0 quarantined job(s)\n"
    assert not (daemon.quarantine / f"{job:06d}").exists()


# -- refusals, on a journal and files made here (no daemon needed) ------------------------


@pytest.fixture
def site(tmp_path: Path, models_dir: Path) -> Daemon:
    """A configured site whose daemon is not running, with an empty journal."""
    daemon = Daemon(tmp_path, models_dir)
    daemon.state.mkdir()
    Journal(daemon.state / "journal.sqlite").close()
    return daemon


def record(site: Daemon, source: Path, *, sha256: str | None = None, queued: bool = False) -> Job:
    info = source.stat()
    identity = FileIdentity(str(source), info.st_size, info.st_mtime_ns, info.st_ino)
    digest = sha256 or sha256_of(source)
    with Journal(site.state / "journal.sqlite") as journal:
        if queued:
            return journal.enqueue(identity, digest, str(source.parent))[0]
        return journal.quarantine_file(identity, digest, str(source.parent), "retries exhausted")


def _gone(source: Path) -> None:
    source.unlink()


def _changed(source: Path) -> None:
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    source.write_bytes(bytes(data))


def _linked(source: Path) -> None:
    outside = source.parent.parent / "elsewhere.mp4"  # the same content, outside the inbox
    shutil.move(source, outside)
    source.symlink_to(outside)


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (_gone, "is gone"),
        (_changed, "has changed since it was taken in"),
        (_linked, "is now a symbolic link, not the clip"),
    ],
)
def test_retry_refuses_a_source_gone_changed_or_replaced_by_a_link(
    site: Daemon, tmp_path: Path, spoil: Callable[[Path], None], words: str
) -> None:
    source = write_clip(site.inbox / "CAM1_gate.mp4", frames=10)
    job = record(site, source)
    spoil(source)
    refused = run_cli(site.config, "retry", str(job.id))
    assert_one_clear_line(refused, 1, f"job {job.id} cannot be retried: its source {source} ")
    assert words in refused.stderr
    still_quarantined(site, job)


def test_retry_refuses_a_clip_that_was_never_hashed_and_says_why(site: Daemon) -> None:
    source = site.inbox / "huge.mp4"
    source.write_bytes(b"\0" * 4096)  # stands for a clip over max_gigabytes: never read
    info = source.stat()
    job = record(site, source, sha256=f"unhashed:{info.st_dev}:{info.st_ino}:4096:1")
    refused = run_cli(site.config, "retry", str(job.id))
    assert_one_clear_line(refused, 1, "was over the size limit when it arrived")
    assert "never read or hashed" in refused.stderr and "limits.max_gigabytes" in refused.stderr
    still_quarantined(site, job)


def test_retry_refuses_a_clip_that_still_fails_intakes_checks(site: Daemon) -> None:
    source = site.inbox / "notes.mp4"
    source.write_bytes(b"this is not a video\n" * 50)
    job = record(site, source)
    refused = run_cli(site.config, "retry", str(job.id))
    assert_one_clear_line(refused, 1, "still fails intake's checks: notes.mp4")
    still_quarantined(site, job)


def test_retry_refuses_a_job_that_is_not_quarantined_or_not_there(site: Daemon) -> None:
    queued = record(site, write_clip(site.inbox / "a.mp4", frames=5), queued=True)
    refused = run_cli(site.config, "retry", str(queued.id))
    assert_one_clear_line(refused, 1, f"job {queued.id} cannot be retried: it is queued")
    assert_one_clear_line(run_cli(site.config, "retry", "999"), 1, "there is no job 999")
    # --state alone is enough to find the journal
    missing = privmask("retry", "999", "--state", site.state)
    assert_one_clear_line(missing, 1, "there is no job 999")
    listed = privmask("quarantine", "list", "--state", site.state)
    assert listed.returncode == 0 and listed.stdout == "0 quarantined job(s)\n"


def still_quarantined(site: Daemon, job: Job) -> None:
    with Journal(site.state / "journal.sqlite") as journal:
        assert journal.get(job.id).state is JobState.QUARANTINED
        assert len(journal.events(job.id)) == 1  # nothing appended
