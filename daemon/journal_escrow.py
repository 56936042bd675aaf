"""The journal's escrow table: which escrow copy holds which job's original, until when.

Rows are written by whoever seals an original (a worker, the live supervisor) and read by
`privmask reveal` and the retention pass. A row is never deleted: a copy removed by
retention keeps its row with `deleted` set, so the journal still says it existed.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

from privmask.daemon.journal_db import JournalDB

_COLUMNS = (
    "job, file, sha256, bytes, source_sha256, written, expires, deleted, rule, ruleset, recorded"
)


@dataclass(frozen=True)
class EscrowCopy:
    """One job's original in the escrow store."""

    job: str  # "000123" for a file job, "live-..." for a live segment
    file: str  # its name in the store
    sha256: str  # of the age file
    bytes: int
    source_sha256: str  # of the original it holds
    written: float
    expires: float | None  # epoch seconds; None: kept
    deleted: float | None
    rule: str
    ruleset: str
    recorded: str | None  # recording start, ISO 8601

    def manifest_block(self) -> dict[str, Any]:
        """What a package's manifest says of it (the name is the job id, never a person's)."""
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes}


class EscrowTable(JournalDB):
    def record_escrow(self, copy: EscrowCopy) -> None:
        """Record a job's escrow copy; a later try's copy of the same job replaces the row
        (it replaced the file too: one copy per job)."""
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO escrow ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                astuple(copy),
            )

    def escrow(self, job: str) -> EscrowCopy | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM escrow WHERE job = ?", (job,)
            ).fetchone()
        return EscrowCopy(*row) if row else None

    def expired_escrows(self, now: float) -> list[EscrowCopy]:
        """Copies past their retention that are still in the store."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM escrow WHERE deleted IS NULL AND expires <= ? "
                "ORDER BY expires",
                (now,),
            ).fetchall()
        return [EscrowCopy(*row) for row in rows]

    def escrow_deleted(self, job: str, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE escrow SET deleted = ? WHERE job = ?", (now, job))
