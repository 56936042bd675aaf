"""The audit log: who did what with an original, in a file nobody can quietly change.

Layout in ``state/audit/``: ``log.jsonl`` holds one entry per line, canonical JSON (sorted
keys, compact separators, UTF-8), each with ``prev``, the sha256 of the line before it (64
zeros for the first): change, delete, insert or reorder one line and the chain breaks at the
next. ``checkpoints/<entries:012d>.txt`` (+ ``.txt.minisig``) pins the head of the chain with
the site key every N entries and at shutdown; anyone checks one with
``minisign -Vm checkpoints/000000000120.txt -P <site public key>``.

What a hash chain cannot do, said plainly: whoever can write the file can cut off or rewrite
the entries after the newest checkpoint, and rebuild a chain that is consistent in itself;
only a signed checkpoint (and a copy of it kept off this host) shows that. Between
checkpoints the log is evidence against accidents and careless edits, not against root.

Several processes append (the daemon, its workers, a ``privmask reveal``), so an append
holds an exclusive ``flock`` on the log while it reads the head and writes, and fsyncs before
it returns: an entry reported written survives a power cut. Entries hold hashes, job ids and
escrow file names, never a secret and never a source's file name (it may name a person).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pwd
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from privmask.adapters import files
from privmask.adapters.minisign import PublicKey, SecretKey, SignatureError, verify

log = structlog.get_logger("privmask.audit")

LOG_NAME = "log.jsonl"
CHECKPOINTS = "checkpoints"
GENESIS = "0" * 64
FIELDS = frozenset({"seq", "time", "actor", "action", "job", "reason", "details", "prev"})
ACTIONS = frozenset({
    "key_created", "rules_loaded", "escrow_written", "source_deleted", "source_delete_failed",
    "reveal", "reveal_refused", "reveal_failed", "retention_deleted",
    "review_decided", "review_viewed",
})  # fmt: skip
CHECKPOINT_TITLE = "privmask audit checkpoint"
_CHECKPOINT_NAME = re.compile(r"(\d{12})\.txt")
_MAX_LINE_BYTES = 64 * 1024  # an entry is a few hundred bytes; more is a caller's mistake
_TAIL_CHUNK = 64 * 1024


class AuditError(Exception):
    """The audit log cannot be written or read; one line."""


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The one byte form of an entry (without its newline): what the chain hashes."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def now_utc(timespec: str = "milliseconds") -> str:
    return datetime.now(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def actor_name(requester: str | None = None) -> str:
    """Who runs this command: the login of the real user id, plus whom it is done for."""
    try:
        login = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = f"uid {os.getuid()}"
    actor = f"user {login}"
    if requester and requester.strip():
        actor += " for " + " ".join(requester.split())[:200]
    return actor


class AuditLog:
    def __init__(self, folder: Path, signer: SecretKey | None, checkpoint_every: int = 100) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.folder = folder
        self.path = folder / LOG_NAME
        self.signer = signer
        self.checkpoint_every = checkpoint_every

    def append(
        self,
        action: str,
        *,
        actor: str,
        job: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add one entry; durable when this returns, else AuditError and nothing added."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        try:
            with self._locked() as fd:
                seq, head = _repair_and_read_head(fd, self.path)
                entry: dict[str, Any] = {
                    "seq": seq + 1, "time": now_utc(), "actor": actor, "action": action,
                    "job": job, "reason": reason, "details": dict(details or {}), "prev": head,
                }  # fmt: skip
                line = _encode(entry)
                if len(line) > _MAX_LINE_BYTES:
                    raise AuditError(f"audit entry {action} is larger than {_MAX_LINE_BYTES} bytes")
                _write_durably(fd, line + b"\n")
                if self.signer is not None and entry["seq"] % self.checkpoint_every == 0:
                    self._checkpoint_quietly(self.signer, entry["seq"], _sha256(line))
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {_why(exc)}") from None
        return entry

    def checkpoint(self) -> Path | None:
        """Sign the current head now (at shutdown); None when there is nothing or no key."""
        signer = self.signer
        if signer is None or not self.path.exists():
            return None
        try:
            with self._locked() as fd:
                seq, head = _repair_and_read_head(fd, self.path)
                return None if seq == 0 else self._write_checkpoint(signer, seq, head)
        except OSError as exc:
            raise AuditError(
                f"cannot write an audit checkpoint in {self.folder}: {_why(exc)}"
            ) from None

    def entries(self, job: str | None = None) -> Iterator[dict[str, Any]]:
        """The entries in order (a line still being written is left out)."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {_why(exc)}") from None
        with handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    return
                entry = _parse(raw.rstrip(b"\n"))
                if entry is None:
                    raise AuditError(
                        f"line {number} of {self.path} is not an audit entry; "
                        "run: privmask audit verify"
                    )
                if job is None or entry["job"] == job:
                    yield entry

    @contextmanager
    def _locked(self) -> Iterator[int]:
        made = _make_folder(self.folder)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if made or os.fstat(fd).st_size == 0:
                files.fsync_folder(self.folder)  # the log's name itself must survive
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _checkpoint_quietly(self, signer: SecretKey, seq: int, head: str) -> None:
        # the entry is already durable; a failed checkpoint must not make it look unwritten,
        # and the next one (or the one at shutdown) covers this head too
        try:
            self._write_checkpoint(signer, seq, head)
        except OSError as exc:
            log.warning("audit_checkpoint_failed", entries=seq, error=_why(exc))

    def _write_checkpoint(self, signer: SecretKey, seq: int, head: str) -> Path:
        folder = self.folder / CHECKPOINTS
        _make_folder(folder)
        text_path = folder / f"{seq:012d}.txt"
        if text_path.exists():
            return text_path
        text = f"{CHECKPOINT_TITLE}\nentries: {seq}\nhead: {head}\ntime: {now_utc('seconds')}\n"
        signature = signer.sign(text.encode(), f"{CHECKPOINT_TITLE} {seq}")
        # the signature first: a checkpoint is never seen without one
        files.write_file(folder / f"{text_path.name}.minisig", signature.encode(), mode=0o640)
        files.write_file(text_path, text.encode(), mode=0o640, overwrite=False)
        return text_path


@dataclass
class AuditReport:
    entries: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(folder: Path, public: PublicKey) -> AuditReport:
    """Check the chain line by line and every checkpoint's signature and head."""
    report = AuditReport()
    problems = _Problems()
    try:
        pinned = _read_checkpoints(folder / CHECKPOINTS, public, problems)
        heads = _walk_chain(folder / LOG_NAME, set(pinned), problems, report)
    except OSError as exc:
        raise AuditError(f"cannot read the audit log in {folder}: {_why(exc)}") from None
    report.checkpoints = len(pinned)
    for seq, head in sorted(pinned.items()):
        if seq > report.entries:
            problems.add(
                "truncated",
                f"checkpoint {seq} covers {seq} entries but the log has {report.entries}: "
                "the log was truncated",
            )
        elif heads.get(seq) != head:
            problems.add(
                "head",
                f"checkpoint {seq}: the log's entry {seq} is not the one signed "
                f"(the log was changed at or before entry {seq})",
            )
    report.problems = problems.lines()
    report.notes = _notes(report.entries, max(pinned, default=0))
    return report


class _Problems:
    """The first problem of each kind, with how many more of that kind there were."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.more: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        if kind in self.first:
            self.more[kind] = self.more.get(kind, 0) + 1
        else:
            self.first[kind] = message

    def lines(self) -> list[str]:
        return [
            message + (f" (and {self.more[kind]} more like it)" if kind in self.more else "")
            for kind, message in self.first.items()
        ]


def _read_checkpoints(folder: Path, public: PublicKey, problems: _Problems) -> dict[int, str]:
    """Each checkpoint whose signature verifies: entries -> signed head."""
    pinned: dict[int, str] = {}
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    for name in names:
        match = _CHECKPOINT_NAME.fullmatch(name)
        if match is None:
            continue
        seq = int(match.group(1))
        try:
            text = (folder / name).read_bytes()
            verify(text, (folder / f"{name}.minisig").read_text(), public)
        except FileNotFoundError:
            problems.add("unsigned", f"checkpoint {seq}: its signature file is missing")
            continue
        except (SignatureError, UnicodeDecodeError) as exc:
            problems.add("signature", f"checkpoint {seq}: the signature does not verify ({exc})")
            continue
        lines = text.decode(errors="replace").splitlines()[1:]
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        if fields.get("entries") != str(seq) or not re.fullmatch(
            r"[0-9a-f]{64}", fields.get("head", "")
        ):
            problems.add(
                "signature", f"checkpoint {seq}: signed, but not a checkpoint of entry {seq}"
            )
            continue
        pinned[seq] = fields["head"]
    return pinned


def _walk_chain(
    path: Path, wanted: set[int], problems: _Problems, report: AuditReport
) -> dict[int, str]:
    """Check seq and prev of every line; returns the hashes of the lines in `wanted`."""
    heads: dict[int, str] = {}
    previous = GENESIS
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return heads
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                problems.add("torn", f"line {number} is incomplete (a write was cut off)")
                break
            line = raw[:-1]
            report.entries = number
            entry = _parse(line)
            if entry is None:
                problems.add("malformed", f"line {number} is not an audit entry")
            elif entry["prev"] != previous:
                problems.add(
                    "chain",
                    f"line {number} does not follow from line {number - 1} "
                    "(an entry was edited, deleted, inserted or moved)",
                )
            if entry is not None and entry["seq"] != number:
                problems.add(
                    "seq",
                    f"line {number} says it is entry {entry['seq']} (entries deleted, "
                    "inserted or moved)",
                )
            previous = _sha256(line)
            if number in wanted:
                heads[number] = previous
    return heads


def _notes(entries: int, newest: int) -> list[str]:
    if entries and not newest:
        return ["no signed checkpoint yet: an edit or a truncation of the whole log cannot be seen"]
    if entries > newest:
        return [
            f"entries {newest + 1}-{entries} come after the newest checkpoint ({newest}): "
            "a truncation or an edit of those cannot be seen until the next checkpoint"
        ]
    return []


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or set(entry) != FIELDS or not isinstance(entry["seq"], int):
        return None
    return entry


def _repair_and_read_head(fd: int, path: Path) -> tuple[int, str]:
    """(seq, sha256) of the last whole line. A torn tail (a writer died mid-line, so its
    append never returned) is cut off first, under the lock. A last line that is not an
    entry stops every append until a person has looked (fail closed)."""
    size = os.fstat(fd).st_size
    line, torn = _last_line(fd, size)
    if torn:
        os.ftruncate(fd, size - torn)
        log.warning("audit_torn_line_dropped", path=str(path), bytes=torn)
    if line is None:
        return 0, GENESIS
    entry = _parse(line)
    if entry is None:
        raise AuditError(
            f"the last line of {path} is not an audit entry; run: privmask audit verify"
        )
    return entry["seq"], _sha256(line)


def _last_line(fd: int, size: int) -> tuple[bytes | None, int]:
    """The last newline-terminated line (without its newline) and the bytes after it."""
    buffer = b""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        buffer = os.pread(fd, end - start, start) + buffer
        end = start
        last = buffer.rfind(b"\n")
        if last == -1:
            continue
        before = buffer.rfind(b"\n", 0, last)
        if before != -1 or end == 0:
            return buffer[before + 1 : last], len(buffer) - last - 1
    return None, len(buffer)


def _make_folder(folder: Path) -> bool:
    """Create a private folder if missing; True when it was made (its name fsynced)."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return False
    files.fsync_folder(folder.parent)
    return True


def _encode(entry: Mapping[str, Any]) -> bytes:
    try:
        return canonical(entry)
    except UnicodeEncodeError:  # e.g. a --reason with bytes that are not UTF-8
        raise AuditError(f"audit entry {entry['action']} has text that is not UTF-8") from None


def _write_durably(fd: int, data: bytes) -> None:
    """Append and fsync; on failure cut the file back, so nothing half-written stays."""
    size = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        with suppress(OSError):  # else the next append cuts the torn line off
            os.ftruncate(fd, size)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is not a folder"
    return exc.strerror or str(exc)
