"""The reviewers' file: one `name:hash` line per reviewer, the hash scrypt's (hashlib).

A hash carries its own parameters and salt (`scrypt$n$r$p$salt$key`, base64), so stronger
parameters later do not invalidate older lines. The file is written whole through a
temporary name, mode 600, and refused when group or others may read it: the hashes can be
attacked offline by whoever reads them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Literal

from privmask.adapters import files

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # above OWASP's 2**14 floor, ~50 ms a check
KEY_BYTES, SALT_BYTES = 32, 16
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # a bound before hashing: a megabyte "password" costs only its hashing
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MAX_N = 2**20  # what a file may ask for: beyond it a crafted line could exhaust memory
_MAX_FILE = 1 << 20


class ReviewError(Exception):
    """A reviewers' file or a reviewer's input is wrong; the message says which and why."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ReviewError(
            f"reviewer name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ReviewError(f"the password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ReviewError(f"the password must be at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def check_password(record: str, password: str) -> bool:
    """Whether `password` matches `record`; the keys are compared in constant time."""
    if len(password) > MAX_PASSWORD:  # never set by add_user: a long one matches nothing
        return False
    try:
        kind, n, r, p, salt, key = record.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:  # a malformed line matches nothing
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy() -> str:
    """Checked when the name is unknown, so that a wrong name costs what a wrong password does."""
    return hash_password(secrets.token_urlsafe(16))


LoginResult = Literal["accepted", "wrong password", "unknown name"]


def login(path: Path, name: str, password: str) -> LoginResult:
    """Whether `name` may log in with `password`, and if not, why (for the log only: the
    person trying is told neither). The file is read anew each time, so that `add-user` and
    `remove-user` take effect on a running server."""
    record = read_users(path).get(name)
    matched = check_password(record or _dummy(), password)
    if record is None:
        return "unknown name"
    return "accepted" if matched else "wrong password"


def verify(path: Path, name: str, password: str) -> bool:
    return login(path, name, password) == "accepted"


def read_users(path: Path) -> dict[str, str]:
    """name -> hash record; ReviewError when the file is missing, unreadable or too open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ReviewError(f"{path}: reviewers' file is not a regular file")
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ReviewError(
                    f"{path}: reviewers' file must not be readable by group or others "
                    f"(mode {stat.filemode(mode)}; run chmod 600 {path})"
                )
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise ReviewError(f"{path}: cannot read the reviewers' file ({exc.strerror})") from None
    if len(data) > _MAX_FILE:
        raise ReviewError(f"{path}: reviewers' file is larger than {_MAX_FILE} bytes")
    return _parse(path, data)


def add_user(path: Path, name: str, password: str) -> bool:
    """Set `name`'s password (a new file if there is none); True if `name` was there."""
    if not path.parent.is_dir():
        raise ReviewError(f"{path.parent}: no such folder for the reviewers' file")
    users = read_users(path) if path.exists() else {}
    replaced = check_name(name) in users
    users[name] = hash_password(check_new_password(password))
    _write(path, users)
    return replaced


def remove_user(path: Path, name: str) -> None:
    users = read_users(path)
    if users.pop(name, None) is None:
        raise ReviewError(f"{path}: no reviewer named {name!r}")
    _write(path, users)


def _parse(path: Path, data: bytes) -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReviewError(f"{path}: reviewers' file is not UTF-8 text") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, record = line.partition(":")
        if not sep or not NAME.fullmatch(name) or not _well_formed(record):
            # the line is not quoted: it may hold a hash
            raise ReviewError(f"{path}:{number}: not a `name:scrypt$...` line")
        users[name] = record
    return users


def _well_formed(record: str) -> bool:
    parts = record.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    return 2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16


def _write(path: Path, users: dict[str, str]) -> None:
    lines = "".join(f"{name}:{record}\n" for name, record in sorted(users.items()))
    text = "# privmask reviewers: written by privmask review add-user; keep mode 600\n" + lines
    files.write_file(path, text.encode("utf-8"), mode=0o600, overwrite=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    memory = 128 * r * n * p + (1 << 20)
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=memory, dklen=KEY_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
