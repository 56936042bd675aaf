"""The escrow store: each job's unmasked original, encrypted with age to the custodians.

Why age, to public keys: the daemon holds only the custodians' public keys, so neither it
nor anyone who takes over its host can read back what it escrowed; a custodian decrypts
with the standard `age` tool (or `privmask reveal`, which records the access first).

A copy is named by its job id (`000123.age`, `live-20261130T160102-ab12cd.age`), never by a
camera, a file name or a person, since the store may be a share others can list. It is
written under a hidden temporary name, fsynced and renamed (`adapters.files`), so it is
whole and durable before the package that refers to it is published. A retried job's copy
replaces its earlier try's: one copy per job, whatever crashed where.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from privmask.adapters import age, files
from privmask.adapters.models import sha256_of
from privmask.adapters.video import VideoError

SUFFIX = ".age"
_MODE = 0o640  # ciphertext; a custodians' group may read the store


def copy_path(store: Path, job: str) -> Path:
    return store / f"{job}{SUFFIX}"


def seal(
    original: Path,
    store: Path,
    job: str,
    recipients: Sequence[age.Recipient],
    expected_sha256: str | None = None,
) -> age.Sealed:
    """Encrypt `original` (streaming) into the store as the job's copy; durable on return.
    With `expected_sha256`, a source whose bytes are not those taken in is refused
    (VideoError) and nothing is left in the store."""
    target = copy_path(store, job)
    with open(original, "rb") as source, files.staging(target) as staged:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _MODE)
        with os.fdopen(fd, "wb") as sink:
            sealed = age.encrypt(source, sink, recipients)
        if expected_sha256 is not None and sealed.plain_sha256 != expected_sha256:
            raise VideoError(
                f"{job}: the source changed since it was taken in; it will be taken in again"
            )
        files.publish(staged, target, overwrite=True)
    return sealed


def problem(store: Path, job: str, sha256: str) -> str | None:
    """Why the job's copy in the store is not the one recorded, or None when it is."""
    path = copy_path(store, job)
    try:
        found = sha256_of(path)
    except FileNotFoundError:
        return f"escrow copy {path.name} is missing from {store}"
    except OSError as exc:
        return f"escrow copy {path.name} cannot be read: {exc.strerror}"
    if found != sha256:
        return f"escrow copy {path.name} is not the one recorded (sha256 differs)"
    return None
