"""`privmask reveal`: a custodian gets the original back, whole, selectively masked or cut, and
only after the access is on record; refusals leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from custody_site import Site, build_site

from privmask.adapters.models import sha256_of
from privmask.adapters.package import read_package
from privmask.daemon.custody.reveal_span import Span
from privmask.daemon.testing import is_masked, read_frames

from harness import PASSWORD

REASON = "court order 4711/26"
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Site:
    return build_site(tmp_path_factory.mktemp("site"), models_dir)


def audit(site: Site) -> list[dict[str, Any]]:
    done = site.cli("audit", "show", "--json")
    assert done.returncode == 0, done.stderr
    entries: list[dict[str, Any]] = json.loads(done.stdout)
    return entries


def reveal(
    site: Site, out: Path, *extra: str, identity: Path | None = None, target: str | None = None
) -> subprocess.CompletedProcess[str]:
    return site.cli(
        "reveal", target or site.job, "--identity", str(identity or site.identity),
        "--reason", REASON, "--out", str(out), *extra,
    )  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.stderr.startswith("privmask: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert text in done.stderr
    assert "AGE-SECRET-KEY" not in done.stderr and "Traceback" not in done.stderr


@slow
def test_the_original_comes_back_whole_after_its_audit_entry(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "original.mp4"
    before = len(audit(site))

    done = reveal(site, out, "--requester", "DC Smith (case 4711)")

    assert done.returncode == 0, done.stderr
    assert sha256_of(out) == sha256_of(site.original) == site.manifest["input"]["sha256"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["original.mp4"]  # no temporary left
    (entry,) = audit(site)[before:]
    assert f"audit entry {entry['seq']}" in done.stdout
    assert (entry["action"], entry["job"], entry["reason"]) == ("reveal", site.job, REASON)
    assert entry["actor"].startswith("user ") and entry["actor"].endswith(
        " for DC Smith (case 4711)"
    )
    assert entry["details"]["out"] == "original.mp4"
    assert entry["details"]["escrow"] == site.manifest["escrow"]["file"]
    assert entry["details"]["escrow_sha256"] == site.manifest["escrow"]["sha256"]
    # recorded (and fsynced) before a byte of the original was written; file times come from
    # the kernel's coarse clock, which may lag the precise one by a few milliseconds
    assert datetime.fromisoformat(entry["time"]).timestamp() <= out.stat().st_mtime + 0.02


@slow
def test_the_ssh_custodian_reveals_by_package_path(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "by-package.mp4"

    done = reveal(site, out, identity=site.ssh_identity, target=str(site.package))

    assert done.returncode == 0, done.stderr
    assert sha256_of(out) == sha256_of(site.original)
    assert audit(site)[-1]["job"] == site.job


@slow
def test_a_wrong_identity_is_refused_on_record_and_leaves_nothing(
    site: Site, tmp_path: Path
) -> None:
    out = tmp_path / "original.mp4"
    before = len(audit(site))

    done = reveal(site, out, identity=site.stranger)

    assert done.returncode == 1
    one_error_line(done, "the identity does not open this escrow copy")
    assert list(tmp_path.iterdir()) == []
    entries = audit(site)[before:]
    assert [e["action"] for e in entries] == ["reveal", "reveal_refused"]
    assert all(e["job"] == site.job and e["reason"] == REASON for e in entries)


@slow
@pytest.mark.parametrize("reason", ["", "   \n "])
def test_no_reason_no_reveal_and_nothing_recorded(site: Site, tmp_path: Path, reason: str) -> None:
    out = tmp_path / "original.mp4"
    before = len(audit(site))

    done = site.cli(
        "reveal", site.job, "--identity", str(site.identity), "--reason", reason, "--out", str(out)
    )

    assert done.returncode == 2
    assert "--reason" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists() and len(audit(site)) == before


@slow
def test_an_existing_out_is_refused_before_anything_is_recorded(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "evidence.mp4"
    out.write_text("an earlier file\n")
    before = len(audit(site))

    done = reveal(site, out)

    assert done.returncode == 1
    one_error_line(done, "already exists")
    assert out.read_text() == "an earlier file\n" and len(audit(site)) == before


# the audit folder read-only (a bind mount in a private namespace), then the reveal
_READ_ONLY_AUDIT = (
    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 77; shift; exec "$@"'
)


@slow
def test_nothing_is_revealed_when_the_access_cannot_be_recorded(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "original.mp4"
    log = site.daemon.state / "audit" / "log.jsonl"
    before = log.read_bytes()
    command = [
        sys.executable, "-m", "privmask.daemon.cli", "reveal", site.job,
        "--identity", str(site.identity), "--reason", REASON, "--out", str(out),
        "--config", str(site.config),
    ]  # fmt: skip

    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _READ_ONLY_AUDIT,
         "sh", str(log.parent), *command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 1
    one_error_line(done, "cannot write the audit log")
    assert "Read-only" in done.stderr
    assert list(tmp_path.iterdir()) == [] and log.read_bytes() == before


@slow
def test_a_missing_or_changed_escrow_copy_is_refused_before_it_is_opened(
    site: Site, tmp_path: Path
) -> None:
    out = tmp_path / "original.mp4"
    copy = site.escrow_copy
    sealed = copy.read_bytes()
    before = len(audit(site))
    try:
        copy.rename(tmp_path.parent / "aside.age")
        missing = reveal(site, out)
        copy.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
        changed = reveal(site, out)
    finally:
        copy.write_bytes(sealed)
    one_error_line(missing, f"escrow copy {copy.name} is missing")
    one_error_line(changed, f"escrow copy {copy.name} is not the one recorded")
    assert missing.returncode == changed.returncode == 1
    assert not out.exists() and len(audit(site)) == before


@slow
def test_unknown_jobs_and_packages_are_one_line_each(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "original.mp4"
    stray = tmp_path.parent / "someone-elses.zip"
    stray.write_bytes(b"PK")

    no_escrow = reveal(site, out, target="424242")
    no_package = reveal(site, out, target=str(stray))

    one_error_line(no_escrow, "job 424242 has no escrow copy")
    one_error_line(no_package, "give the job id")
    assert not out.exists()


def _package_video(site: Site, folder: Path) -> Path:
    video, _ = read_package(site.package, PASSWORD.encode(), site.public)
    path = folder / "package-video.mp4"
    path.write_bytes(video)
    return path


def _masked_share(target_boxes: Any, original: list[Any], output: list[Any]) -> float:
    checks = [
        is_masked(original[i], output[i], box)
        for i, box in enumerate(target_boxes)
        if box is not None
    ]
    return sum(checks) / len(checks)


@slow
def test_keep_visible_unmasks_exactly_the_named_subject(site: Site, tmp_path: Path) -> None:
    faces = [t for t in site.manifest["tracks"] if t["class"] == "face"]
    early = [t["subject"] for t in faces if t["masked_from"] < 15]  # the face there from frame 0
    late = [t["subject"] for t in faces if t["masked_from"] >= 15]
    assert len(early) == 1 and late, faces
    out = tmp_path / "selective.mp4"

    done = reveal(site, out, "--keep-visible", str(early[0]))

    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    original = list(read_frames(site.original))
    revealed = list(read_frames(out))
    packaged = list(read_frames(_package_video(site, tmp_path.parent)))
    assert len(revealed) == len(original) == len(packaged)
    targets = {t.id: t.boxes for t in site.scene.targets}
    assert _masked_share(targets["early"], original, packaged) >= 0.95  # masked in the package
    assert _masked_share(targets["early"], original, revealed) == 0.0  # visible in the reveal
    assert _masked_share(targets["late"], original, revealed) >= 0.95  # everyone else masked
    assert audit(site)[-1]["details"]["keep_visible"] == early


@slow
def test_from_to_cuts_the_originals_own_pictures(site: Site, tmp_path: Path) -> None:
    recorded = datetime.fromisoformat(site.manifest["recorded"]["time"])
    until = (recorded + timedelta(seconds=2)).isoformat()
    out = tmp_path / "cut.mp4"

    done = reveal(site, out, "--from", "0:00:00.5", "--to", until)

    assert done.returncode == 0, done.stderr
    original = list(read_frames(site.original))
    cut = list(read_frames(out))
    first = next(i for i, frame in enumerate(original) if np.array_equal(frame, cut[0]))
    assert first / site.scene.fps <= 0.5  # the keyframe at or before --from
    assert 0 < len(cut) < len(original) and first + len(cut) <= 2 * site.scene.fps + 3
    assert all(np.array_equal(a, b) for a, b in zip(cut, original[first:]))  # not re-encoded
    details = audit(site)[-1]["details"]
    assert details["from"]["seconds"] == 0.5 and details["to"]["seconds"] == pytest.approx(2.0)
    assert hashlib.sha256(out.read_bytes()).hexdigest() != site.manifest["input"]["sha256"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("1:30", 90.0), ("0:01:30.5", 90.5), ("2.25", 2.25)]
)
def test_offsets_into_the_clip(text: str, seconds: float) -> None:
    assert Span.parse(text, None).resolve(None) == (seconds, None)


def test_times_resolve_against_the_recording_start() -> None:
    span = Span.parse("2026-11-30T14:03:10+01:00", "2026-11-30T13:03:40Z")
    assert span.resolve("2026-11-30T14:03:00+01:00") == (10.0, 40.0)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("1:75", None, "0-59"),
        ("2026-11-30T14:03:10", None, "no time zone"),
        ("yesterday", None, "neither an offset"),
        ("30", "20", "not after"),
    ],
)
def test_bad_ranges_are_refused_as_given(start: str, end: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Span.parse(start, end)


def test_a_time_before_the_recording_or_without_one_is_refused() -> None:
    span = Span.parse("2026-11-30T13:00:00Z", None)
    with pytest.raises(ValueError, match="before the clip's recording starts"):
        span.resolve("2026-11-30T14:03:00+01:00")
    with pytest.raises(ValueError, match="give an offset"):
        span.resolve(None)
