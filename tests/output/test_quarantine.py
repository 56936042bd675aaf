"""Quarantine folders: published whole through adapters/files, an older copy replaced."""

from __future__ import annotations

import json
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
