"""The output package: one AES-256 zip per redacted clip, dropped atomically into an outbox.

Why a zip: recipients (police, insurers, data-subject requests) open it with the tools they
already have (7-Zip, WinZip, macOS Archive Utility with a plug-in); AES-256 (WinZip AE-2)
keeps the video and the manifest confidential on the way.

What stays visible without the password: a zip's entry names, sizes and dates are not
encrypted. So the names are generic (``video.mp4``, ``manifest.json``, ``manifest.sig``) and
the entry dates are the packaging time, never a camera name, a file name or a recording time.

Why ``manifest.sig``: WinZip AES already detects corruption of each entry, but a recipient
also wants to show that the manifest (hashes of input and output, rule file, models) is the
one privmask wrote. The signature is HMAC-SHA256 over the exact bytes of ``manifest.json``,
keyed with ``PBKDF2-HMAC-SHA256(password, salt=b"privmask-manifest", 200_000 iterations,
32 bytes)``; anyone holding the password can recompute it (see :func:`manifest_key`). It
proves integrity against people without the password, not authorship among those with it.

Why the drop is atomic: the outbox is watched by other programs (upload agents, VMS import
jobs). The package is written under a hidden ``.<name>.<random>.partial`` name and
published through :mod:`privmask.adapters.files` (fsync, a link that never replaces an
existing package, fsync of the outbox), so it appears whole under ``<name>.zip`` and stays
there after a power cut; on any failure nothing is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyzipper
from pyzipper.zipfile_aes import AESZipInfo

from privmask.adapters import files

VIDEO_STEM = "video"
MANIFEST_ENTRY = "manifest.json"
SIGNATURE_ENTRY = "manifest.sig"
PACKAGE_SUFFIX = ".zip"

#: Key derivation for the manifest signature; recipients need these three values.
MANIFEST_KEY_SALT = b"privmask-manifest"
MANIFEST_KEY_ITERATIONS = 200_000
MANIFEST_KEY_LENGTH = 32

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_MAX_NAME_BYTES = 200  # leaves room for ".<name>.<random>.partial" within NAME_MAX (255)
_COPY_CHUNK = 1 << 20
_FILE_MODE = 0o640


class PackageError(Exception):
    """A package could not be written or read; the message is one line and never a password."""


@dataclass(frozen=True)
class PackageContents:
    """What goes into one package: the redacted video file and its manifest."""

    video: Path
    manifest: dict[str, Any]
    video_suffix: str = ".mp4"


def manifest_key(password: bytes) -> bytes:
    """The HMAC key for manifest signatures, derived from the package password."""
    return hashlib.pbkdf2_hmac(
        "sha256", password, MANIFEST_KEY_SALT, MANIFEST_KEY_ITERATIONS, MANIFEST_KEY_LENGTH
    )


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as stored and signed: sorted keys, 2-space indent, UTF-8, final newline."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PackageError(f"manifest is not plain JSON data: {exc}") from exc
    return (text + "\n").encode("utf-8")


def sign_manifest(manifest_bytes: bytes, password: bytes) -> str:
    """HMAC-SHA256 of the exact manifest bytes, as lower-case hex."""
    return hmac.new(manifest_key(password), manifest_bytes, hashlib.sha256).hexdigest()


def verify_manifest(manifest_bytes: bytes, signature_hex: str, password: bytes) -> bool:
    """True when ``signature_hex`` is the signature of ``manifest_bytes`` under ``password``."""
    expected = sign_manifest(manifest_bytes, password)
    return hmac.compare_digest(expected, signature_hex.strip().lower())


def write_package(contents: PackageContents, outbox: Path, name: str, password: bytes) -> Path:
    """Write ``<outbox>/<name>.zip`` atomically and return its path.

    Refuses to replace an existing package: names are the caller's choice and must be unique,
    and silently losing an earlier package would lose evidence.
    """
    _check_name(name)
    _check_password(password)
    suffix = _check_suffix(contents.video_suffix)
    manifest_bytes = canonical_manifest(contents.manifest)
    signature = sign_manifest(manifest_bytes, password).encode("ascii") + b"\n"

    outbox = Path(outbox)
    if not outbox.exists():
        raise PackageError(f"outbox {outbox} does not exist")
    if not outbox.is_dir():
        raise PackageError(f"outbox {outbox} is not a folder")
    final = outbox / f"{name}{PACKAGE_SUFFIX}"
    if final.exists() or final.is_symlink():
        raise _taken(final)

    try:
        video = open(contents.video, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise PackageError(f"cannot read video {contents.video}: {_reason(exc)}") from exc

    # no .zip at the end: an upload agent that picks up `*.zip` must not take it half written
    temporary = files.temporary_name(final).with_suffix("")
    try:
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except OSError as exc:
            raise PackageError(f"cannot write package into {outbox}: {_reason(exc)}") from exc
        ours = os.fstat(fd)
        try:
            with os.fdopen(fd, "wb") as sink:
                _write_zip(sink, video, suffix, manifest_bytes, signature, password)
            files.publish(temporary, final)
        except FileExistsError as exc:  # the name was taken meanwhile: not ours to touch
            raise _taken(final) from exc
        except OSError as exc:
            _remove_if_ours(final, ours)  # published but not known durable: leave nothing
            raise PackageError(f"cannot write package into {outbox}: {_reason(exc)}") from exc
        except (pyzipper.LargeZipFile, ValueError, RuntimeError) as exc:
            raise PackageError(f"cannot write package into {outbox}: {exc}") from exc
        except BaseException:
            _remove_if_ours(final, ours)
            raise
    finally:
        files.remove(temporary)  # gone already once published
        video.close()
    return final


def read_package(path: Path, password: bytes) -> tuple[bytes, dict[str, Any]]:
    """Open a package: the video bytes and the verified manifest (for tests and tools)."""
    _check_password(password)
    try:
        with pyzipper.AESZipFile(path, "r") as archive:
            archive.setpassword(password)
            infos = archive.infolist()
            names = [info.filename for info in infos]
            videos = [n for n in names if n.startswith(VIDEO_STEM + ".")]
            expected = sorted([*videos, MANIFEST_ENTRY, SIGNATURE_ENTRY])
            if len(videos) != 1 or sorted(names) != expected:
                raise PackageError(f"{path} is not a privmask package (entries: {names})")
            if any(not info.flag_bits & 0x1 for info in infos):
                raise PackageError(f"{path} holds unencrypted entries; refusing it")
            manifest_bytes = archive.read(MANIFEST_ENTRY)
            signature = archive.read(SIGNATURE_ENTRY).decode("ascii", "replace")
            video = archive.read(videos[0])
    except PackageError:
        raise
    except FileNotFoundError as exc:
        raise PackageError(f"package {path} does not exist") from exc
    except OSError as exc:
        raise PackageError(f"cannot read package {path}: {_reason(exc)}") from exc
    except RuntimeError as exc:  # pyzipper: "Bad password for file ..."
        if "password" in str(exc).lower():
            raise PackageError(f"wrong password for package {path}") from None
        raise PackageError(f"cannot read package {path}: {exc}") from exc
    except (pyzipper.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise PackageError(f"package {path} is corrupt: {exc}") from exc

    if not verify_manifest(manifest_bytes, signature, password):
        raise PackageError(f"package {path}: manifest signature does not match")
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"package {path}: manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"package {path}: manifest is not a JSON object")
    return video, manifest


def _write_zip(
    sink: Any, video: Any, suffix: str, manifest: bytes, signature: bytes, password: bytes
) -> None:
    """Stream the video (stored: it is already compressed), then manifest and signature."""
    stamp = time.localtime()[:6]
    with pyzipper.AESZipFile(
        sink, "w", compression=pyzipper.ZIP_STORED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password)
        archive.setencryption(pyzipper.WZ_AES, nbits=256)

        info = _entry(VIDEO_STEM + suffix, stamp, pyzipper.ZIP_STORED)
        info.file_size = os.fstat(video.fileno()).st_size  # picks ZIP64 for large videos
        with archive.open(info, "w") as entry:
            shutil.copyfileobj(video, entry, _COPY_CHUNK)
        archive.writestr(_entry(MANIFEST_ENTRY, stamp, pyzipper.ZIP_DEFLATED), manifest)
        archive.writestr(_entry(SIGNATURE_ENTRY, stamp, pyzipper.ZIP_STORED), signature)


def _entry(name: str, stamp: tuple[int, ...], compression: int) -> Any:
    info = AESZipInfo(name, date_time=stamp)
    info.compress_type = compression
    info.external_attr = 0o600 << 16
    return info


def _taken(final: Path) -> PackageError:
    return PackageError(f"package {final} already exists; refusing to overwrite it")


def _remove_if_ours(final: Path, ours: os.stat_result) -> None:
    """Remove `final` only if it is the file this call wrote (never another's package)."""
    try:
        found = os.lstat(final)
    except OSError:
        return
    if (found.st_dev, found.st_ino) == (ours.st_dev, ours.st_ino):
        files.remove(final)


def _reason(exc: OSError) -> str:
    """A short human reason for an OS error (never includes data, only the errno's meaning)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EFBIG:
        return "the file is too large for this disk or limit"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (not writable or readable by this user)"
    if exc.errno == errno.EROFS:
        return "the filesystem is read-only"
    if exc.errno == errno.ENOENT:
        return "no such file or folder"
    return exc.strerror or type(exc).__name__


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise PackageError("package name must be a non-empty string")
    if "/" in name or "\\" in name or "\0" in name or name.startswith("."):
        raise PackageError(
            f"package name {name!r} must be a plain file name (no path, not starting with '.')"
        )
    if any(ord(ch) < 32 for ch in name):
        raise PackageError(f"package name {name!r} contains control characters")
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        raise PackageError(f"package name is longer than {_MAX_NAME_BYTES} bytes")


def _check_suffix(suffix: str) -> str:
    if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
        raise PackageError(f"video suffix {suffix!r} must look like '.mp4'")
    return suffix.lower()


def _check_password(password: bytes) -> None:
    if not isinstance(password, bytes):
        raise PackageError("password must be bytes")
    if not password:
        raise PackageError("password is empty")
