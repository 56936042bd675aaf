"""adapters/files.py on real files and folders: whole or nothing, never a silent overwrite."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from privmask.adapters import files


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def staged_file(target: Path, data: bytes) -> Path:
    path = files.temporary_name(target)
    path.write_bytes(data)
    return path


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """What files.py fsyncs, by path (read back from /proc/self/fd)."""
    seen: list[Path] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", recording)
    yield seen


# --- temporary names ---


@pytest.mark.parametrize("name", ["clip.mp4", "CAM-1.2024.zip", "cameras.json", "000042", "a"])
def test_temporary_names_are_hidden_unique_and_recognised(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    first, second = files.temporary_name(target), files.temporary_name(target)
    assert first != second
    assert first.parent == tmp_path
    assert first.name.startswith(".")
    assert first.name.endswith(".partial" + target.suffix)  # PyAV picks the container by it
    assert files.OWN_PARTIAL.fullmatch(first.name)


@pytest.mark.parametrize(
    "name", ["clip.mp4", ".hidden", "clip.partial", ".clip.partial", ".x.zz.partial", "current"]
)
def test_other_names_are_not_taken_for_ours(name: str) -> None:
    assert not files.OWN_PARTIAL.fullmatch(name)


# --- publishing a file ---


def test_publish_a_file_durably(tmp_path: Path, fsynced: list[Path]) -> None:
    target = tmp_path / "clip.mp4"
    staged = staged_file(target, b"video")
    files.publish(staged, target)
    assert target.read_bytes() == b"video"
    assert names(tmp_path) == ["clip.mp4"]  # the temporary name is gone
    assert staged in fsynced  # the data, before the name
    assert fsynced[-1] == tmp_path  # and the folder, after it: the name itself is durable


def test_publish_never_overwrites_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "evidence.zip"
    target.write_bytes(b"first")
    staged = staged_file(target, b"second")
    with pytest.raises(FileExistsError):
        files.publish(staged, target)
    assert target.read_bytes() == b"first"
    assert staged.read_bytes() == b"second"  # left for the caller's staging() to remove

    files.publish(staged, target, overwrite=True)
    assert target.read_bytes() == b"second"
    assert names(tmp_path) == ["evidence.zip"]


def test_publish_never_replaces_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "evidence.zip"
    target.symlink_to(tmp_path / "nowhere")  # dangling: exists() alone would say no
    with pytest.raises(FileExistsError):
        files.publish(staged_file(target, b"x"), target)
    assert target.is_symlink()


def test_without_hard_links_the_rename_still_refuses_a_taken_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:  # what an SMB or FAT mount says
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    target = tmp_path / "clip.mp4"
    files.publish(staged_file(target, b"one"), target)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileExistsError):
        files.publish(staged_file(target, b"two"), target)
    assert target.read_bytes() == b"one"


def test_staging_removes_the_temporary_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), files.staging(target) as path:
        path.write_bytes(b"half a file")
        raise RuntimeError("encoder crashed")
    assert names(tmp_path) == []


def test_staging_removes_nothing_once_published(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with files.staging(target) as path:
        path.write_bytes(b"whole")
        files.publish(path, target)
    assert names(tmp_path) == ["clip.mp4"]


def test_publish_of_a_missing_file_publishes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with pytest.raises(FileNotFoundError):
        files.publish(files.temporary_name(target), target)
    assert names(tmp_path) == []


# --- publishing a folder ---


def test_publish_a_folder_with_everything_in_it(tmp_path: Path, fsynced: list[Path]) -> None:
    target = tmp_path / "000042"
    with files.staging(target) as scratch:
        (scratch / "inner").mkdir(parents=True)
        (scratch / "reason.json").write_text("{}")
        (scratch / "inner" / "clip.mp4").write_bytes(b"v")
        files.publish(scratch, target)
    assert names(tmp_path) == ["000042"]
    assert (target / "reason.json").read_text() == "{}"
    assert (target / "inner" / "clip.mp4").read_bytes() == b"v"
    assert {scratch / "reason.json", scratch / "inner" / "clip.mp4", scratch} <= set(fsynced)
    assert fsynced[-1] == tmp_path


def test_a_folder_never_replaces_another(tmp_path: Path) -> None:
    target = tmp_path / "snapshot"
    target.mkdir()
    (target / "a.yaml").write_text("old")
    with files.staging(target) as scratch:
        scratch.mkdir()
        (scratch / "a.yaml").write_text("new")
        with pytest.raises(FileExistsError):
            files.publish(scratch, target)
    assert (target / "a.yaml").read_text() == "old"
    assert names(tmp_path) == ["snapshot"]  # the scratch folder went with staging()


# --- write_file ---


def test_write_file_is_private_by_default(tmp_path: Path) -> None:
    target = tmp_path / "cameras.json"
    files.write_file(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    files.write_file(target, b"[]", mode=0o640)  # overwrites by default, with the new mode
    assert target.read_bytes() == b"[]"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert names(tmp_path) == ["cameras.json"]


def test_write_file_without_overwrite_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "package-password"
    files.write_file(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        files.write_file(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["package-password"]


def test_write_file_into_a_missing_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        files.write_file(tmp_path / "gone" / "x.json", b"{}")
    assert names(tmp_path) == []


# --- remove ---


def test_remove_takes_files_and_folders_and_ignores_what_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "f").write_bytes(b"x")
    outside = tmp_path / "keep"
    outside.write_bytes(b"k")
    (folder / "link").symlink_to(outside)
    files.remove(folder)
    files.remove(tmp_path / "never-there")
    assert names(tmp_path) == ["keep"]
    assert outside.read_bytes() == b"k"  # a link inside is removed, not followed
