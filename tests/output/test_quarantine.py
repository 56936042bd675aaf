"""Quarantine folders: published whole through adapters/files, an older copy replaced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from privmask.adapters import files
from privmask.daemon.quarantine import quarantine


def test_a_rejected_clip_is_copied_beside_its_reason(tmp_path: Path) -> None:
    source = tmp_path / "inbox" / "clip.mp4"
    source.parent.mkdir()
    source.write_bytes(b"not really a video")
    folder = tmp_path / "quarantine"
    target = quarantine(source, folder, 42, "invalid", "no video stream")
    assert target == folder / "000042"
    assert sorted(p.name for p in folder.iterdir()) == ["000042"]  # no scratch left
    assert (target / "clip.mp4").read_bytes() == b"not really a video"
    reason = json.loads((target / "reason.json").read_text())
    assert (reason["code"], reason["reason"], reason["copy"], reason["job"]) == (
        "invalid",
        "no video stream",
        "clip.mp4",
        42,
    )
    assert source.read_bytes() == b"not really a video"  # copied, never moved


def test_a_second_quarantine_of_the_job_replaces_the_first(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"v1")
    folder = tmp_path / "quarantine"
    quarantine(source, folder, 7, "invalid", "first")
    (folder / "000007" / "note.txt").write_text("left by the first copy")
    source.unlink()  # the clip is gone by the second time: the reason still matters
    target = quarantine(source, folder, 7, "interrupted", "second")
    assert sorted(p.name for p in target.iterdir()) == ["reason.json"]
    reason = json.loads((target / "reason.json").read_text())
    assert reason["reason"].startswith("second (the clip could not be copied")
    assert reason["copy"] is None
    assert sorted(p.name for p in folder.iterdir()) == ["000007"]


def test_a_failure_leaves_no_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"v")
    folder = tmp_path / "quarantine"

    def disk_full(staged: Path, target: Path, *, overwrite: bool = False) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "publish", disk_full)
    with pytest.raises(OSError, match="No space"):
        quarantine(source, folder, 3, "invalid", "x")
    assert list(folder.iterdir()) == []


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of `folder` and everything below it, by relative name."""
    found = {".": folder.stat().st_mode & 0o777}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = path.stat().st_mode & 0o777
    return found


def test_copies_and_reasons_are_private(tmp_path: Path) -> None:
    """Unredacted video: the job folder 700, the copy and reason.json 600, whatever the
    source's own mode (an NVR export is often 644)."""
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"faces")
    source.chmod(0o644)
    target = quarantine(source, tmp_path / "quarantine", 5, "not_a_video", "x")
    assert modes(target) == {".": 0o700, "clip.mp4": 0o600, "reason.json": 0o600}
    assert source.stat().st_mode & 0o777 == 0o644  # the source is left as it was


def test_group_readable_when_configured(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"faces")
    source.chmod(0o666)
    target = quarantine(source, tmp_path / "quarantine", 5, "not_a_video", "x", group_readable=True)
    assert modes(target) == {".": 0o750, "clip.mp4": 0o640, "reason.json": 0o640}


def test_a_clip_named_reason_json_is_kept_beside_its_reason(tmp_path: Path) -> None:
    source = tmp_path / "reason.json"
    source.write_bytes(b"what the inbox writer put here")
    target = quarantine(source, tmp_path / "quarantine", 9, "not_a_video", "no video stream")
    reason = json.loads((target / "reason.json").read_text())
    assert reason["code"] == "not_a_video"
    assert (target / reason["copy"]).read_bytes() == b"what the inbox writer put here"
    assert reason["copy"] != "reason.json"


def test_a_link_is_never_followed(tmp_path: Path) -> None:
    """A job's path that became a link (the worker and the service quarantine by path):
    the reason is kept, nothing behind the link is copied."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:secret")
    link = tmp_path / "inbox" / "clip.mp4"
    link.parent.mkdir()
    link.symlink_to(secret)
    target = quarantine(link, tmp_path / "quarantine", 4, "interrupted", "interrupted 3 times")
    assert sorted(p.name for p in target.iterdir()) == ["reason.json"]
    reason = json.loads((target / "reason.json").read_text())
    assert reason["code"] == "interrupted" and reason["copy"] is None
    assert "not a regular file" in reason["reason"]


def test_over_the_copy_limit_a_reference_is_kept_not_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "huge.mp4"
    with source.open("wb") as file:
        file.truncate(4 << 20)
    target = quarantine(
        source, tmp_path / "quarantine", 2, "too_large", "too big", max_copy_bytes=1 << 20
    )
    assert sorted(p.name for p in target.iterdir()) == ["reason.json"]
    reason = json.loads((target / "reason.json").read_text())
    info = source.stat()
    assert reason["copy"] is None and reason["code"] == "too_large"
    assert reason["file"] == {
        "path": str(source),
        "size": 4 << 20,
        "device": info.st_dev,
        "inode": info.st_ino,
        "mtime_ns": info.st_mtime_ns,
    }


# Runs inside a private mount namespace on a 64 KiB tmpfs: a really full disk.
_FULL_DISK = """
import json, sys
from pathlib import Path
from privmask.daemon.quarantine import quarantine
source, folder = Path(sys.argv[1]), Path(sys.argv[2])
try:
    target = quarantine(source, folder, 8, "not_a_video", "notes.mp4: no video stream")
except OSError as exc:
    print(json.dumps({"error": exc.strerror}))
else:
    print(json.dumps({
        "reason": json.loads((target / "reason.json").read_text()),
        "files": sorted(p.name for p in target.iterdir()),
        "left": sorted(p.name for p in folder.iterdir()),
    }))
"""


def test_a_copy_that_fills_the_disk_keeps_the_specific_code(tmp_path: Path) -> None:
    source = tmp_path / "notes.mp4"
    source.write_bytes(b"n" * (256 << 10))  # four times what the quarantine disk holds
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=64k tmpfs "$1" || exit 77; exec "$2" -c "$3" "$4" "$1/q"',
         "sh", str(mount), sys.executable, _FULL_DISK, str(source)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode == 77 or "unshare failed" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert "error" not in outcome, outcome
    reason = outcome["reason"]
    assert reason["code"] == "not_a_video"
    assert reason["reason"].startswith("notes.mp4: no video stream")
    assert "could not be copied" in reason["reason"] and "No space left" in reason["reason"]
    assert reason["copy"] is None
    assert outcome["files"] == ["reason.json"]  # no partial copy left
    assert outcome["left"] == ["000008"]
