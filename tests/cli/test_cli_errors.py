"""What a user sees when the system around privmask fails: closed pipes, full or read-only
folders, names already taken. Real processes; a full disk is a real tmpfs, mounted in a
private mount namespace (`unshare -m`), so nothing outside the test sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import assert_one_clear_line, privmask

REDACT_REGION = ("--detect", "none", "--region", "0,0,9,9", "--quiet")


def privmask_on_full_folder(folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run privmask with `folder` a tiny tmpfs already filled to the last byte."""
    if not shutil.which("unshare"):
        pytest.fail("these tests need unshare (util-linux)")
    folder.mkdir(exist_ok=True)
    private = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    script = (
        'mount -t tmpfs -o size=8k tmpfs "$1" || exit 99; shift; '
        'head -c 1M /dev/zero > "$0/fill" 2>/dev/null; exec "$@"'
    )
    done = subprocess.run(
        [*private, "sh", "-c", script, str(folder), str(folder), sys.executable, "-m",
         "privmask.daemon.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode == 99:
        pytest.fail(f"cannot mount a tmpfs in a private namespace: {done.stderr.strip()}")
    return done


def test_a_closed_pipe_ends_quietly() -> None:
    # `privmask models list | head -1`: the reader is gone before privmask writes
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "privmask.daemon.cli", "models", "list"],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141  # as if killed by SIGPIPE, like any other Unix tool


def test_a_full_folder_names_the_file_the_user_asked_for(models_dir: Path, tmp_path: Path) -> None:
    full = tmp_path / "store"
    source = models_dir / "light_person_detector_192.onnx"
    done = privmask_on_full_folder(full, "models", "import", source, "--to", full)
    assert_one_clear_line(done, 1, "No space left on device")
    last = done.stderr.strip().splitlines()[-1]
    assert f"{full}/light_person_detector_192.onnx" in last
    assert ".partial" not in last  # never the hidden temporary name


def test_an_error_without_a_file_name_has_no_empty_slot(clip: Path, tmp_path: Path) -> None:
    full = tmp_path / "reports"
    out = tmp_path / "out.mp4"
    done = privmask_on_full_folder(full, "redact", clip, out, *REDACT_REGION,
                                   "--report", full / "r.json")  # fmt: skip
    assert_one_clear_line(done, 1, "No space left on device")
    assert ": : " not in done.stderr and "error: :" not in done.stderr
    assert not out.exists()


def test_redact_refuses_to_replace_an_output_without_force(clip: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.mp4", tmp_path / "out.json"
    out.write_bytes(b"yesterday's evidence")
    result = privmask("redact", clip, out, *REDACT_REGION, "--report", report)
    assert_one_clear_line(result, 2, f"{out}: already exists")
    assert "--force" in result.stderr
    assert out.read_bytes() == b"yesterday's evidence" and not report.exists()

    out.unlink()
    report.write_text("{}")
    result = privmask("redact", clip, out, *REDACT_REGION, "--report", report)
    assert_one_clear_line(result, 2, f"{report}: already exists")
    assert not out.exists()

    out.write_bytes(b"yesterday's evidence")
    forced = privmask("redact", clip, out, *REDACT_REGION, "--report", report, "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes()[4:8] == b"ftyp" and report.read_text() != "{}"


@pytest.mark.parametrize("name", ["out", "out.xyz", "folder"])
def test_an_output_privmask_cannot_write_is_named_as_given(
    clip: Path, tmp_path: Path, name: str
) -> None:
    (tmp_path / "folder").mkdir()
    out = tmp_path / name
    result = privmask("redact", clip, out, *REDACT_REGION, "--force")
    assert_one_clear_line(result, 2, str(out))
    assert ".partial" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "folder"]


def test_a_report_that_is_a_folder_is_named_as_given(clip: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    result = privmask("redact", clip, tmp_path / "o.mp4", *REDACT_REGION, "--report", report,
                      "--force")  # fmt: skip
    assert_one_clear_line(result, 2, f"{report}: is a folder")
    assert ".partial" not in result.stderr


def test_a_full_output_folder_is_blamed_on_output_not_input(clip: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    done = privmask_on_full_folder(full, "redact", clip, full / "out.mp4", *REDACT_REGION)
    assert_one_clear_line(done, 1, "out.mp4")
    assert "No space left on device" in done.stderr and "clip.mp4" not in done.stderr
