"""Package passwords from a file, an environment variable or a systemd credential."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from privmask.daemon.secrets import MAX_SECRET_BYTES, SecretError, SecretSource, read_secret

SECRET = b"s3cret-Value-\xc3\xa9 with space "


def secret_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def message(source: SecretSource) -> str:
    with pytest.raises(SecretError) as caught:
        read_secret(source)
    text = str(caught.value)
    assert "\n" not in text
    assert SECRET.decode() not in text and SECRET.strip().decode() not in text
    return text


def test_describe_names_the_source_only() -> None:
    assert SecretSource("file", "/etc/privmask/pw").describe() == "file /etc/privmask/pw"
    assert SecretSource("env", "PRIVMASK_PW").describe() == "environment variable PRIVMASK_PW"
    assert SecretSource("credential", "pw").describe() == "systemd credential pw"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (SECRET, SECRET),
        (SECRET + b"\n", SECRET),
        (SECRET + b"\r\n", SECRET),
        (SECRET + b"\n\n", SECRET + b"\n"),  # only one newline is stripped
    ],
)
def test_file(tmp_path: Path, stored: bytes, expected: bytes) -> None:
    path = secret_file(tmp_path / "pw", stored)
    assert read_secret(SecretSource("file", str(path))) == expected


def test_group_readable_file_is_accepted(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", SECRET + b"\n", 0o640)
    assert read_secret(SecretSource("file", str(path))) == SECRET


def test_world_readable_file_is_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", SECRET + b"\n", 0o644)
    text = message(SecretSource("file", str(path)))
    assert "readable by everyone" in text
    assert f"chmod 600 {path}" in text


def test_missing_file(tmp_path: Path) -> None:
    text = message(SecretSource("file", str(tmp_path / "nope")))
    assert text == f"file {tmp_path / 'nope'} does not exist"


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert "not a regular file" in message(SecretSource("file", str(tmp_path)))


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    path = secret_file(tmp_path / "pw", data)
    assert message(SecretSource("file", str(path))) == f"file {path} is empty"


def test_oversized_file(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", SECRET * (MAX_SECRET_BYTES // len(SECRET) + 1))
    assert "larger than" in message(SecretSource("file", str(path)))


def test_device_is_refused() -> None:
    assert "not a regular file" in message(SecretSource("file", "/dev/zero"))


def test_unreadable_file(shared_dir: Path) -> None:
    """Root reads every file, so as root the reader is a forked child running as nobody."""
    path = secret_file(shared_dir / "pw", SECRET, 0o600)
    if os.geteuid() != 0:
        path.chmod(0o000)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                read_secret(SecretSource("file", str(path)))
                os.write(write_end, b"read it")
            except SecretError as exc:
                os.write(write_end, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    assert text == f"file {path} is not readable by this user"


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVMASK_TEST_PW", SECRET.decode() + "\n")
    assert read_secret(SecretSource("env", "PRIVMASK_TEST_PW")) == SECRET


def test_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVMASK_TEST_PW", raising=False)
    text = message(SecretSource("env", "PRIVMASK_TEST_PW"))
    assert text == "environment variable PRIVMASK_TEST_PW is not set"


def test_env_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVMASK_TEST_PW", "")
    assert message(SecretSource("env", "PRIVMASK_TEST_PW")) == (
        "environment variable PRIVMASK_TEST_PW is empty"
    )


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A credentials folder laid out as systemd makes it: mode 0500, files 0400."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    secret_file(folder / "package-password", SECRET + b"\n", 0o400)
    folder.chmod(0o500)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    return folder


def test_credential(credentials: Path) -> None:
    assert read_secret(SecretSource("credential", "package-password")) == SECRET


def test_credential_missing(credentials: Path) -> None:
    text = message(SecretSource("credential", "other"))
    assert text == f"systemd credential other not found in {credentials}"


def test_credentials_directory_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = message(SecretSource("credential", "package-password"))
    assert "systemd credential package-password" in text
    assert "$CREDENTIALS_DIRECTORY is not set" in text


def test_credential_world_readable(credentials: Path) -> None:
    (credentials / "package-password").chmod(0o444)
    text = message(SecretSource("credential", "package-password"))
    assert "readable by everyone" in text and "chmod 600" in text


@pytest.mark.parametrize(
    ("kind", "reference", "fragment"),
    [
        ("file", "", "needs a reference"),
        ("env", "", "needs a reference"),
        ("env", "A=B", "contains '='"),
        ("credential", "../escape", "plain name"),
        ("credential", "..", "plain name"),
        ("argv", "x", "unknown secret source kind"),
    ],
)
def test_bad_sources(kind: str, reference: str, fragment: str) -> None:
    with pytest.raises(SecretError, match=fragment):
        SecretSource(kind, reference)  # type: ignore[arg-type]
