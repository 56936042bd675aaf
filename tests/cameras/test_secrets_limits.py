"""A hostile camera secrets file meets the same bounds as rule and config files (size,
nesting, alias expansion): one clear error that quotes nothing from the file, never a
RecursionError or minutes of parsing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from privmask.daemon import cameras
from privmask.daemon.secrets import SecretError

SECRET = "hunter2-camera"


def secrets_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secrets.yaml"
    path.touch(mode=0o600)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64 deep"),
        (
            f"'*': {{username: admin, password: {SECRET}}}\n" + "# padding\n" * 120_000,
            "at most 1048576",
        ),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, n in zip("abcdefgh", "bcdefghi")
            )
            + "c9: [*i, *i]\n",
            "expands to more than",
        ),
    ],
    ids=["deep", "large", "aliases"],
)
def test_a_hostile_secrets_file_is_one_clear_error(tmp_path: Path, text: str, words: str) -> None:
    path = secrets_file(tmp_path, text)
    with pytest.raises(SecretError, match=words) as caught:
        cameras.load_secrets(path)
    assert str(caught.value).startswith(f"{path}:")
    assert SECRET not in str(caught.value)


def test_the_cli_says_so_in_one_line_however_deep(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "privmask.daemon.cli", "cameras", "discover", "--secrets", str(path),
         "--timeout", "0.1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()  # libyaml refuses this depth itself, before the cap
    assert line.startswith(f"privmask: error: {path}: ")


def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.touch(mode=0o600)
    path.write_bytes(b"cam: {username: admin, password: \xff\xfe}\n")
    with pytest.raises(SecretError, match="not UTF-8 text"):
        cameras.load_secrets(path)
