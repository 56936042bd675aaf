"""The output package: one AES-256 zip per redacted clip, dropped atomically into an outbox.

Why a zip: recipients (police, insurers, data-subject requests) open it with the tools they
already have (7-Zip, WinZip, macOS Archive Utility with a plug-in); AES-256 (WinZip AE-2)
keeps the video and the manifest confidential on the way.

What stays visible without the password: a zip's entry names, sizes and dates are not
encrypted. So the names are generic (``video.mp4``, ``manifest.json``,
``manifest.json.minisig``) and the entry dates are the packaging time, never a camera name, a
file name or a recording time.

Why ``manifest.json.minisig``: WinZip AES already detects corruption of each entry, but a
recipient also wants to show that the manifest (hashes of input, output and escrow copy, rule
set, models) is the one this site's privmask wrote. Every recipient of a package knows its
password, so a signature keyed from the password (an HMAC, as packages once carried in
``manifest.sig``) let any of them rewrite the manifest and sign it again. The manifest is
signed instead with the site's Ed25519 key as a detached minisign signature of the exact
bytes of ``manifest.json`` (trusted comment ``privmask manifest``): only the site key signs,
and anyone with its public key (``privmask keys show``) verifies, with privmask
(:func:`check_package`) or without it::

    7z x -pPASSWORD PACKAGE.zip
    minisign -Vm manifest.json -P RWQ...

:func:`check_package` also streams the video entry and compares its sha256 and size with
the manifest's ``output`` block, so a video swapped by someone with the password fails too.

Why the drop is atomic: the outbox is watched by other programs (upload agents, VMS import
jobs). The package is written under a hidden ``.<name>.<random>.partial`` name and
published through :mod:`privmask.adapters.files` (fsync, a link that never replaces an
existing package, fsync of the outbox), so it appears whole under ``<name>.zip`` and stays
there after a power cut; on any failure nothing is left behind.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyzipper
from pyzipper.zipfile_aes import AESZipInfo

from privmask.adapters import files
from privmask.adapters.minisign import PublicKey, SecretKey, SignatureError, key_id_hex, verify

VIDEO_STEM = "video"
MANIFEST_ENTRY = "manifest.json"
SIGNATURE_ENTRY = "manifest.json.minisig"
PACKAGE_SUFFIX = ".zip"
#: The signed (trusted) comment of a manifest signature: says what the key signed.
MANIFEST_COMMENT = "privmask manifest"

_OLD_SIGNATURE_ENTRY = "manifest.sig"  # the password HMAC packages carried before the site key
_MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists tracks; far below this, and never a bomb
_MAX_SIGNATURE_BYTES = 16 << 10

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


@dataclass(frozen=True)
class PackageCheck:
    """What :func:`check_package` verified: the signed manifest, the video's hash and size,
    and the id of the key that signed (as minisign prints it)."""

    manifest: dict[str, Any]
    video_sha256: str
    video_bytes: int
    signed_by: str


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as stored and signed: sorted keys, 2-space indent, UTF-8, final newline."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PackageError(f"manifest is not plain JSON data: {exc}") from exc
    return (text + "\n").encode("utf-8")


def write_package(
    contents: PackageContents, outbox: Path, name: str, password: bytes, signer: SecretKey
) -> Path:
    """Write ``<outbox>/<name>.zip`` atomically, its manifest signed by `signer`; its path.

    Refuses to replace an existing package: names are the caller's choice and must be unique,
    and silently losing an earlier package would lose evidence.
    """
    _check_name(name)
    _check_password(password)
    suffix = _check_suffix(contents.video_suffix)
    manifest_bytes = canonical_manifest(contents.manifest)
    signature = signer.sign(manifest_bytes, MANIFEST_COMMENT).encode("utf-8")

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


def read_package(
    path: Path, password: bytes, public: PublicKey | None
) -> tuple[bytes, dict[str, Any]]:
    """The video bytes and the manifest of a small package (tests, tools). Given `public`,
    checked as :func:`check_package` checks; None reads without any check of authorship."""
    _check_password(password)
    with _reading(path, password) as (archive, video_name):
        manifest_bytes, signature = _manifest_entries(archive)
        if public is not None:
            _verify_signature(path, manifest_bytes, signature, public)
        video = archive.read(video_name)
    manifest = _parse_manifest(path, manifest_bytes)
    if public is not None:
        _match_video(path, manifest, hashlib.sha256(video).hexdigest(), len(video))
    return video, manifest


def check_package(path: Path, password: bytes, public: PublicKey) -> PackageCheck:
    """Verify a package: the site signature over its manifest, and its video (streamed, so
    memory stays flat for any size) against the manifest's sha256 and size."""
    _check_password(password)
    with _reading(path, password) as (archive, video_name):
        manifest_bytes, signature = _manifest_entries(archive)
        _verify_signature(path, manifest_bytes, signature, public)
        manifest = _parse_manifest(path, manifest_bytes)
        digest = hashlib.sha256()
        size = 0
        with archive.open(video_name) as entry:
            while chunk := entry.read(_COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    _match_video(path, manifest, digest.hexdigest(), size)
    return PackageCheck(manifest, digest.hexdigest(), size, public.key_id_hex)


@contextmanager
def _reading(path: Path, password: bytes) -> Iterator[tuple[Any, str]]:
    """The open archive and its video entry's name; every reading error as one line."""
    try:
        with pyzipper.AESZipFile(path, "r") as archive:
            archive.setpassword(password)
            yield archive, _video_entry(path, archive.infolist())
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
        raise PackageError(f"package {path} is corrupt: {_one_line(exc)}") from exc


def _video_entry(path: Path, infos: list[Any]) -> str:
    names = [info.filename for info in infos]
    videos = [n for n in names if n.startswith(VIDEO_STEM + ".")]
    if _OLD_SIGNATURE_ENTRY in names and SIGNATURE_ENTRY not in names:
        raise PackageError(
            f"package {path} predates site signing (password-keyed manifest.sig); "
            "its manifest cannot be verified by key"
        )
    if len(videos) != 1 or sorted(names) != sorted([*videos, MANIFEST_ENTRY, SIGNATURE_ENTRY]):
        raise PackageError(f"{path} is not a privmask package (entries: {names})")
    if any(not info.flag_bits & 0x1 for info in infos):
        raise PackageError(f"{path} holds unencrypted entries; refusing it")
    return videos[0]


def _manifest_entries(archive: Any) -> tuple[bytes, str]:
    """The manifest's exact bytes and the signature's text, each read within a cap."""
    manifest = _read_capped(archive, MANIFEST_ENTRY, _MAX_MANIFEST_BYTES)
    signature = _read_capped(archive, SIGNATURE_ENTRY, _MAX_SIGNATURE_BYTES)
    return manifest, signature.decode("utf-8", "replace")


def _read_capped(archive: Any, name: str, limit: int) -> bytes:
    with archive.open(name) as entry:
        data: bytes = entry.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{name} is larger than {limit} bytes")
    return data


def _verify_signature(path: Path, manifest: bytes, signature: str, public: PublicKey) -> None:
    signed_by = _signing_key_id(signature)
    if signed_by is not None and signed_by != public.key_id:
        raise PackageError(
            f"package {path}: manifest is signed by key {key_id_hex(signed_by)}, "
            f"not by key {public.key_id_hex}"
        )
    try:
        comment = verify(manifest, signature, public)
    except SignatureError as exc:
        detail = str(exc).removeprefix("signature does not verify: ")
        raise PackageError(
            f"package {path}: manifest signature does not verify with key "
            f"{public.key_id_hex}: {detail}"
        ) from None
    if comment != MANIFEST_COMMENT:
        raise PackageError(
            f"package {path}: not a manifest signature (its signed comment is not "
            f"{MANIFEST_COMMENT!r})"
        )


def _signing_key_id(signature: str) -> bytes | None:
    """The key id a minisign signature names (its second line), to say who signed it."""
    lines = signature.split("\n")
    try:
        raw = base64.b64decode(lines[1].strip(), validate=True) if len(lines) > 1 else b""
    except (binascii.Error, ValueError):
        return None
    return raw[2:10] if len(raw) == 74 else None


def _parse_manifest(path: Path, manifest_bytes: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"package {path}: manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"package {path}: manifest is not a JSON object")
    return manifest


def _match_video(path: Path, manifest: dict[str, Any], sha256: str, size: int) -> None:
    output = manifest.get("output")
    recorded = (output.get("sha256"), output.get("bytes")) if isinstance(output, dict) else None
    if recorded is None or not isinstance(recorded[0], str) or not isinstance(recorded[1], int):
        raise PackageError(
            f"package {path}: manifest does not record the video's sha256 and size "
            "(output.sha256, output.bytes)"
        )
    if recorded != (sha256, size):
        raise PackageError(
            f"package {path}: video does not match the manifest (sha256 {sha256[:16]}..., "
            f"{size} bytes; manifest says {recorded[0][:16]}..., {recorded[1]} bytes)"
        )


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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
