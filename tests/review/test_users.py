"""`privmask review add-user` and `remove-user`: the reviewers' file as an administrator
and an attacker who reads it would see it."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
from pathlib import Path

from privmask.daemon.review import users

from harness import PRIVMASK
from reviewing import privmask

PASSWORD = "a long enough secret"


def test_add_user_from_stdin_writes_a_private_file_with_a_salted_scrypt_hash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reviewers"
    for name in ("alice", "bob"):
        done = privmask(
            "review", "add-user", name, "--users", path, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert done.returncode == 0, done.stderr
        assert f"added reviewer {name}" in done.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    records = users.read_users(path)
    assert set(records) == {"alice", "bob"}
    kind, n, r, p, salt_a, _ = records["alice"].split("$")
    assert (kind, int(n) >= 2**14, int(r) >= 8, int(p) >= 1) == ("scrypt", True, True, True)
    assert records["bob"].split("$")[4] != salt_a  # the same password, a salt of its own
    assert users.verify(path, "alice", PASSWORD)
    assert not users.verify(path, "alice", PASSWORD + "x")
    assert not users.verify(path, "carol", PASSWORD)


def test_add_user_again_changes_the_password(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    users.add_user(path, "alice", PASSWORD)
    done = privmask(
        "review",
        "add-user",
        "alice",
        "--users",
        path,
        "--password-stdin",
        stdin="another long secret\n",
    )
    assert done.returncode == 0, done.stderr
    assert "password changed" in done.stdout
    assert users.verify(path, "alice", "another long secret")
    assert not users.verify(path, "alice", PASSWORD)


def test_remove_user(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    users.add_user(path, "alice", PASSWORD)
    users.add_user(path, "bob", PASSWORD)
    done = privmask("review", "remove-user", "alice", "--users", path)
    assert done.returncode == 0, done.stderr
    assert set(users.read_users(path)) == {"bob"}
    again = privmask("review", "remove-user", "alice", "--users", path)
    assert again.returncode == 1
    assert again.stderr.strip().endswith("no reviewer named 'alice'")


def test_bad_names_and_short_passwords_are_usage_errors_that_change_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reviewers"
    cases = [("a:b", PASSWORD), ("", PASSWORD), ("alice", "short"), ("alice", "")]
    for name, password in cases:
        done = privmask(
            "review", "add-user", name, "--users", path, "--password-stdin", stdin=password + "\n"
        )
        assert done.returncode == 2, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
        assert not path.exists()


def test_without_a_terminal_the_password_is_not_read_from_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    done = subprocess.run(
        [*PRIVMASK, "review", "add-user", "alice", "--users", str(path)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal
        timeout=60,
    )
    assert done.returncode == 2
    assert "--password-stdin" in done.stderr
    assert not path.exists()


def test_password_typed_on_a_terminal_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    pid, fd = pty.fork()
    if pid == 0:  # the child: privmask on a real terminal
        os.execv(
            sys.executable,
            [*PRIVMASK, "review", "add-user", "alice", "--users", str(path)],
        )
    screen = _answer(fd, [b"password for alice: ", b"again: "], PASSWORD)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert PASSWORD.encode() not in screen
    assert users.verify(path, "alice", PASSWORD)


def test_a_group_readable_users_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    users.add_user(path, "alice", PASSWORD)
    path.chmod(0o640)
    done = privmask("review", "remove-user", "alice", "--users", path)
    assert done.returncode == 1
    assert "chmod 600" in done.stderr
    assert "Traceback" not in done.stderr


def _answer(fd: int, prompts: list[bytes], password: str) -> bytes:
    """Read the terminal until each prompt, type the password after it; all that was shown."""
    screen = b""
    for prompt in prompts:
        while not screen.endswith(prompt):
            ready, _, _ = select.select([fd], [], [], 60)
            assert ready, f"no prompt {prompt!r}; the terminal showed {screen!r}"
            screen += os.read(fd, 1024)
        os.write(fd, password.encode() + b"\n")
    try:
        while chunk := os.read(fd, 1024):
            screen += chunk
    except OSError:  # the child closed the terminal
        pass
    return screen
