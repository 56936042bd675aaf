"""age encryption of originals for custodians: recipients, identities, streaming seal and open.

Why age: a custodian (a data-protection officer, a court's expert) decrypts an escrow copy
with the standard ``age`` tool (Debian package ``age``) and nothing of privmask's, with an
``age-keygen`` identity or the SSH ed25519 key they already have. The daemon holds only
public keys, so it cannot read back what it sealed.

Why streaming: clips run to many GB. :func:`encrypt` and :func:`decrypt` pass file objects
to pyrage's ``encrypt_io``/``decrypt_io``, which pull 8 KiB at a time through small wrappers
that hash what goes by, so memory stays flat and the caller gets the sha256 of both sides
without reading either file twice.

Errors: :class:`AgeError` is one line that names the entry or file at fault and never holds
key material (a secret key put where a public one belongs is named by position, not
echoed). An OSError from the caller's own source or destination (a full escrow share) comes
out unchanged, errno intact, so the caller can tell "wait for space" from "bad key": pyrage
would otherwise turn it into a string. Decryption streams too, so on an AgeError the
destination may hold a verified prefix: the caller discards it (atomic placement through
:mod:`privmask.adapters.files` is the caller's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import pyrage

Recipient: TypeAlias = pyrage.x25519.Recipient | pyrage.ssh.Recipient
Identity: TypeAlias = pyrage.x25519.Identity | pyrage.ssh.Identity

_MAX_KEY_FILE = 1 << 20  # recipients and identity files are a few lines; refuse anything huge
_SHOWN = 72  # at most this much of an unrecognised (public) entry is echoed
_SSH_ED25519 = re.compile(r"ssh-ed25519 [A-Za-z0-9+/]+=*( .*)?")
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")  # could be key material in some other encoding
_SECRET_MARKERS = ("AGE-SECRET-KEY-", "AGE-PLUGIN-", "-----BEGIN", "PRIVATE KEY")
_OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"
_OPENSSH_MAGIC = b"openssh-key-v1\0"
_AGE_FILE_MARKERS = (b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")


class AgeError(Exception):
    """A recipient, identity or age file is unusable; one line, never key material."""


class WrongIdentity(AgeError):
    """The file is sound, but none of the identities given opens it."""


@dataclass(frozen=True)
class Sealed:
    """What :func:`encrypt` saw: the plaintext's and the age file's sha256 and size."""

    plain_sha256: str
    plain_bytes: int
    sealed_sha256: str
    sealed_bytes: int


# --- recipients ---


def parse_recipients(entries: Sequence[str]) -> list[Recipient]:
    """Public keys from rule or config entries: ``age1...``, ``ssh-ed25519 AAAA... [comment]``
    or the absolute path of a recipients file (``age -R`` format)."""
    recipients: list[Recipient] = []
    for position, entry in enumerate(entries, 1):
        if not isinstance(entry, str):
            raise AgeError(f"escrow recipient {position} is not a string")
        text = entry.strip()
        if text.startswith("/"):
            recipients.extend(_recipients_file(Path(text)))
        else:
            recipients.append(_recipient(text, f"escrow recipient {position}"))
    if not recipients:
        raise AgeError("no escrow recipients given")
    return recipients


def _recipient(text: str, where: str) -> Recipient:
    """One recipient line; `where` names it ("escrow recipient 2", "FILE line 3")."""
    if _looks_secret(text):
        raise AgeError(
            f"{where} is a secret key, not a public one: give the public key "
            "(age-keygen -y IDENTITY, or the .pub file of an SSH key)"
        )
    if text.startswith("age1"):
        try:
            return pyrage.x25519.Recipient.from_str(text)
        except pyrage.RecipientError as exc:
            raise AgeError(
                f"{where} {_shown(text)} is not a valid age X25519 public key ({exc}); "
                "plugin and post-quantum recipients are not supported"
            ) from None
    if text.startswith("ssh-"):
        if not _SSH_ED25519.fullmatch(text):
            raise AgeError(
                f"{where} {_shown(text)} is not an ssh-ed25519 public key "
                "(only ssh-ed25519 SSH keys are accepted)"
            )
        try:
            return pyrage.ssh.Recipient.from_str(text)
        except pyrage.RecipientError:
            raise AgeError(f"{where} {_shown(text)} is not a valid ssh-ed25519 key") from None
    shown = "(an opaque token, not shown)" if _OPAQUE.fullmatch(text) else _shown(text)
    raise AgeError(
        f"{where} {shown} is neither an age public key (age1...), an ssh-ed25519 "
        "public key nor the absolute path of a recipients file"
    )


def _recipients_file(path: Path) -> list[Recipient]:
    text = _read_key_file(path, "recipients file")
    found = [
        _recipient(line.strip(), f"recipients file {path} line {number}")
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not found:
        raise AgeError(f"recipients file {path} names no recipients")
    return found


def _looks_secret(text: str) -> bool:
    upper = text.upper()
    return any(marker in upper for marker in _SECRET_MARKERS)


def _shown(text: str) -> str:
    """A public entry as it may be echoed: quoted, one line, shortened."""
    short = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    return repr(short)


# --- identities ---


def load_identities(path: Path) -> list[Identity]:
    """The identities of an age identity file or an unencrypted OpenSSH ed25519 key."""
    path = Path(path)
    text = _read_key_file(path, "identity file")
    if text.lstrip().startswith(_OPENSSH_BEGIN):
        return [_ssh_identity(path, text)]
    if "-----BEGIN" in text:
        raise AgeError(
            f"identity file {path} is not an OpenSSH private key; convert it with "
            "ssh-keygen -p -f COPY (OpenSSH format) or give an age identity file"
        )
    return _age_identities(path, text)


def _age_identities(path: Path, text: str) -> list[Identity]:
    identities: list[Identity] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-PLUGIN-"):
            raise AgeError(
                f"identity file {path} line {number}: plugin identities are not supported"
            )
        if not line.startswith("AGE-SECRET-KEY-1"):
            raise AgeError(
                f"identity file {path} line {number} is not an age identity "
                "(AGE-SECRET-KEY-1...) nor a comment"
            )
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:  # its message is generic, but keep the line out entirely
            raise AgeError(
                f"identity file {path} line {number} is a damaged age identity"
            ) from None
    if not identities:
        raise AgeError(f"identity file {path} holds no identities")
    return identities


def _ssh_identity(path: Path, text: str) -> Identity:
    cipher, key_type = _openssh_header(path, text)
    if cipher != b"none":
        raise AgeError(
            f"identity file {path} is a passphrase-protected SSH key, and privmask cannot ask "
            "for a passphrase: use an unencrypted copy (ssh-keygen -p -N '' -f COPY) kept "
            "offline, or decrypt with age -d -i"
        )
    if key_type != b"ssh-ed25519":
        shown = key_type.decode("ascii", "replace")[:40]
        raise AgeError(f"identity file {path} is an {shown} key; escrow uses ssh-ed25519 keys")
    try:
        return pyrage.ssh.Identity.from_buffer(text.encode("ascii"))
    except (pyrage.IdentityError, UnicodeEncodeError):
        raise AgeError(f"identity file {path} is a damaged OpenSSH private key") from None


def _openssh_header(path: Path, text: str) -> tuple[bytes, bytes]:
    """(cipher name, key type) from an OpenSSH private key's unencrypted header."""
    body = text.strip()
    if not body.endswith(_OPENSSH_END):
        raise AgeError(f"identity file {path} is a damaged OpenSSH private key")
    body = body[len(_OPENSSH_BEGIN) : -len(_OPENSSH_END)]
    try:
        blob = base64.b64decode("".join(body.split()), validate=True)
        if not blob.startswith(_OPENSSH_MAGIC):
            raise ValueError("no magic")
        offset = len(_OPENSSH_MAGIC)
        cipher, offset = _ssh_string(blob, offset)
        _kdf, offset = _ssh_string(blob, offset)
        _kdf_options, offset = _ssh_string(blob, offset)
        offset += 4  # number of keys
        public, offset = _ssh_string(blob, offset)
        key_type, _ = _ssh_string(public, 0)
    except (binascii.Error, ValueError, struct.error):
        raise AgeError(f"identity file {path} is a damaged OpenSSH private key") from None
    return cipher, key_type


def _ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", blob, offset)
    start = offset + 4
    if start + length > len(blob):
        raise ValueError("truncated")
    return blob[start : start + length], start + length


def _read_key_file(path: Path, kind: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise AgeError(f"{kind} {path} does not exist") from None
    except IsADirectoryError:
        raise AgeError(f"{kind} {path} is a folder, not a file") from None
    except PermissionError:
        raise AgeError(f"{kind} {path} is not readable by this user") from None
    except OSError as exc:
        raise AgeError(f"cannot read {kind} {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > _MAX_KEY_FILE:
        raise AgeError(f"{kind} {path} is larger than {_MAX_KEY_FILE} bytes")
    if data.startswith(_AGE_FILE_MARKERS):
        raise AgeError(
            f"{kind} {path} is itself age-encrypted (passphrase-protected); "
            "decrypt it first with age -d, or decrypt with age -d -i directly"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AgeError(f"{kind} {path} is not a text file") from None


# --- streaming encrypt and decrypt ---


class _Hashing:
    """Hashes and counts the bytes that pass; keeps the caller's own I/O error, because
    pyrage would flatten it (and its errno) into a string."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.error: BaseException | None = None

    def _seen(self, data: bytes) -> None:
        self.sha256.update(data)
        self.bytes += len(data)


class _HashingReader(_Hashing):
    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size)
        except BaseException as exc:
            self.error = exc
            raise
        self._seen(data)
        return data


class _HashingWriter(_Hashing):
    def write(self, data: Any) -> int:
        chunk = bytes(data)
        try:
            self.stream.write(chunk)
        except BaseException as exc:
            self.error = exc
            raise
        self._seen(chunk)
        return len(chunk)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BaseException as exc:
            self.error = exc
            raise


def encrypt(source: BinaryIO, destination: BinaryIO, recipients: Sequence[Recipient]) -> Sealed:
    """Seal `source` to `recipients` into `destination`, streaming; flush, no fsync."""
    if not recipients:
        raise AgeError("no escrow recipients given")
    reader, writer = _HashingReader(source), _HashingWriter(destination)
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
    except BaseException as exc:
        _reraise_own(reader, writer)
        raise AgeError(f"age encryption failed: {_one_line(exc)}") from None
    writer.flush()
    return Sealed(
        plain_sha256=reader.sha256.hexdigest(),
        plain_bytes=reader.bytes,
        sealed_sha256=writer.sha256.hexdigest(),
        sealed_bytes=writer.bytes,
    )


def decrypt(
    source: BinaryIO, destination: BinaryIO, identities: Sequence[Identity]
) -> tuple[str, int]:
    """Open an age file with `identities` into `destination`, streaming; (sha256, bytes) of
    the plaintext. On AgeError the destination may hold a prefix: discard it."""
    name = _name(source)
    if not identities:
        raise AgeError("no identities given")
    reader, writer = _HashingReader(source), _HashingWriter(destination)
    try:
        pyrage.decrypt_io(reader, writer, list(identities))
    except BaseException as exc:
        _reraise_own(reader, writer)
        if "no matching keys" in str(exc).lower():
            raise WrongIdentity(f"{name}: no identity given matches this file") from None
        raise AgeError(
            f"{name} is not a complete age file or is damaged ({_one_line(exc)})"
        ) from None
    writer.flush()
    return writer.sha256.hexdigest(), writer.bytes


def _reraise_own(*streams: _Hashing) -> None:
    """The caller's own I/O failure (or Ctrl-C) comes out as itself, not as an age error."""
    for stream in streams:
        if stream.error is not None:
            raise stream.error from None


def _name(source: BinaryIO) -> str:
    name = getattr(source, "name", None)
    return f"age file {name}" if isinstance(name, str) else "age file"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
