"""`privmask review serve` as an administrator starts it: what it serves, and the one line
it ends with when it cannot."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from privmask.daemon.config import ConfigError, load_config
from privmask.daemon.review import users

from reviewing import NAME, PASSWORD, privmask


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert text in lines[0]


def test_serve_answers_on_the_configured_address_until_terminated(
    tmp_path: Path, users_file: Path
) -> None:
    port = free_port()
    config = tmp_path / "privmask.yaml"
    config.write_text(
        f"state: {tmp_path / 'state'}\n"
        f"review: {{listen: '127.0.0.1:{port}', users: {users_file}, session_idle_minutes: 5}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "privmask.daemon.cli", "review", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f"http://127.0.0.1:{port}/" in banner
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            page = client.get("/login")
            assert page.status_code == 200
            assert "Log in" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode in (0, 128 + signal.SIGTERM)


def test_missing_users_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nobody"
    done = privmask("review", "serve", "--users", missing, "--listen", f"127.0.0.1:{free_port()}")
    one_line_error(done, 1, f"{missing}: cannot read the reviewers' file")


def test_empty_users_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "reviewers"
    users.add_user(path, NAME, PASSWORD)
    users.remove_user(path, NAME)
    done = privmask("review", "serve", "--users", path, "--listen", f"127.0.0.1:{free_port()}")
    one_line_error(done, 1, "privmask review add-user NAME")


def test_port_in_use_is_one_line(users_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = privmask("review", "serve", "--users", users_file, "--listen", f"127.0.0.1:{port}")
    one_line_error(done, 1, f"cannot listen on 127.0.0.1:{port}: the port is in use")


@pytest.mark.parametrize("listen", ["8470", "localhost:", "127.0.0.1:70000", "[::1:80"])
def test_bad_listen_is_a_usage_error(users_file: Path, listen: str) -> None:
    done = privmask("review", "serve", "--users", users_file, "--listen", listen)
    one_line_error(done, 2, "--listen")


def test_config_review_key_is_read(tmp_path: Path) -> None:
    path = tmp_path / "privmask.yaml"
    path.write_text("review: {listen: '0.0.0.0:9000', users: /etc/privmask/reviewers}\n")
    review = load_config(path).review
    assert review is not None
    assert (review.listen, review.users) == ("0.0.0.0:9000", "/etc/privmask/reviewers")
    assert (review.session_idle_minutes, review.session_max_hours) == (30, 8)
    assert load_config(None).review is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("review: {listen: nowhere}", "review.listen: listen must be HOST:PORT"),
        ("review: {listen: 'localhost:0'}", "review.listen: listen port must be 1..65535"),
        ("review: {session_idle_minutes: 0}", "review.session_idle_minutes"),
        ("review: {session_idle_minutes: 120, session_max_hours: 1}", "must not exceed"),
        ("review: {user: x}", "review.user"),
    ],
)
def test_config_review_key_is_checked(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "privmask.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(path)
