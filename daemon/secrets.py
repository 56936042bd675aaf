"""Where the package password comes from: a file, an environment variable or a systemd
credential, never the command line.

Why not the command line: arguments are visible to every user in ``ps`` and
``/proc/<pid>/cmdline`` and end up in shell histories and service unit listings.

Why these three: a file (mode 600, owned by the service user) is the plain Unix way; an
environment variable suits containers whose orchestrator injects secrets; a systemd
credential (``LoadCredential=``/``SetCredential=``) is the most careful, because systemd
hands it only to this service under ``$CREDENTIALS_DIRECTORY``, which nobody else can read.

Every message names the source (path, variable, credential), never the secret itself.
`SecretSource` and `SecretError` live in the rules layer (`privmask.rules.secret`), which
rule files and the config both compile to; they are re-exported here with the reader.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from privmask.rules.secret import SecretError, SecretKind, SecretSource

__all__ = ["MAX_SECRET_BYTES", "SecretError", "SecretKind", "SecretSource", "read_secret"]

#: A password file larger than this is a mistake (a video, a key ring), not a password.
MAX_SECRET_BYTES = 64 * 1024


def read_secret(source: SecretSource) -> bytes:
    """Read the secret; strips exactly one trailing newline (``\\n`` or ``\\r\\n``).

    Only one, because editors add one and ``echo`` adds one, but other trailing whitespace
    may be part of the password.
    """
    if source.kind == "env":
        value = os.environ.get(source.reference)
        if value is None:
            raise SecretError(f"{source.describe()} is not set")
        return _finish(os.fsencode(value), source)
    if source.kind == "file":
        return _finish(_read_file(Path(source.reference), source.describe()), source)
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise SecretError(
            f"{source.describe()}: $CREDENTIALS_DIRECTORY is not set "
            "(run privmask as a systemd service with LoadCredential= or SetCredential=)"
        )
    path = Path(folder) / source.reference
    if not path.exists():
        raise SecretError(f"{source.describe()} not found in {folder}")
    return _finish(_read_file(path, source.describe()), source)


def _read_file(path: Path, what: str) -> bytes:
    """Read a small regular file that not everyone can read.

    The mode is checked on the opened descriptor, so a swap between check and read cannot
    slip a different file past the check.
    """
    label = what if str(path) in what else f"{what} ({path})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise SecretError(f"{label} does not exist") from exc
    except PermissionError as exc:
        raise SecretError(f"{label} is not readable by this user") from exc
    except OSError as exc:
        raise SecretError(f"{label} cannot be opened: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{label} is not a regular file")
        if info.st_mode & stat.S_IROTH:
            raise SecretError(f"{label} is readable by everyone; run: chmod 600 {path}")
        if info.st_size > MAX_SECRET_BYTES:
            raise SecretError(f"{label} is larger than {MAX_SECRET_BYTES} bytes")
        chunks: list[bytes] = []
        remaining = MAX_SECRET_BYTES + 1
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise SecretError(f"{label} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_SECRET_BYTES:
        raise SecretError(f"{label} is larger than {MAX_SECRET_BYTES} bytes")
    return data


def _finish(data: bytes, source: SecretSource) -> bytes:
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise SecretError(f"{source.describe()} is empty")
    return data
