"""The journal's sweep tables: per source how far it is covered, per chunk what became of it.

A chunk is recorded once by its key (UNIQUE): a double fire, a restart or an overlapping
manual run finds it recorded and makes nothing again. It goes planned -> fetching (one
taker) -> queued (its job) or gap (no data); `settle` marks it settled once its job is
final, and moves the source's watermark over the longest run of settled chunks and gaps,
never past where the last complete listing reached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from privmask.daemon.journal_db import JournalDB
from privmask.daemon.sweeps.source import Chunk

# a job in one of these says what became of its chunk: packaged, the same content packaged
# by another job, quarantined with its reason, or rejected by a reviewer
_FINAL = ("done", "duplicate", "quarantined", "rejected")


@dataclass(frozen=True)
class SourceStatus:
    name: str
    covered_to: datetime | None
    last_run: float | None
    last_error: str | None
    failures: int
    next_attempt: float | None


@dataclass(frozen=True)
class ChunkRow:
    key: str
    recording: str
    start: datetime
    end: datetime
    state: str
    job_id: int | None
    gap: bool


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _outcome(row: tuple[str, str | None] | None) -> str:
    chunk, job = row or ("planned", None)
    if chunk == "gap":
        return "gap"
    if chunk == "planned":
        return "left"
    if job in ("done", "duplicate"):
        return "packaged"
    if job == "review":  # a person decides before the package: handed over, not under way
        return "waiting for review"
    return "quarantined" if job in ("quarantined", "rejected") else "working"


class SweepTable(JournalDB):
    """The sweep_sources and sweep_chunks tables (schema 5)."""

    def record_chunks(self, chunks: tuple[Chunk, ...], *, by_recording: bool) -> list[Chunk]:
        """Record each chunk not recorded yet; returns those waiting to be fetched (new, or
        planned by a run that did not get to them). `by_recording`: a source whose recording
        is one chunk (a folder's file) takes a recording once, whatever span it is seen with."""
        now, waiting = time.time(), []
        with self._transaction() as db:
            for chunk in chunks:
                if (
                    by_recording
                    and db.execute(
                        "SELECT 1 FROM sweep_chunks "
                        "WHERE source = ? AND recording = ? AND key != ?",
                        (chunk.source, chunk.recording, chunk.key),
                    ).fetchone()
                ):
                    continue
                db.execute(
                    "INSERT INTO sweep_chunks (key, source, recording, camera, start, end, state, "
                    "created, updated) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?) "
                    "ON CONFLICT(key) DO NOTHING",
                    (chunk.key, chunk.source, chunk.recording, chunk.camera,
                     chunk.start.timestamp(), chunk.end.timestamp(), now, now),
                )  # fmt: skip
                row = db.execute("SELECT state FROM sweep_chunks WHERE key = ?", (chunk.key,))
                if row.fetchone()[0] == "planned":
                    waiting.append(chunk)
        return waiting

    def take_chunk(self, key: str) -> bool:
        """planned -> fetching, for one taker only; False when another has it or it is done."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE sweep_chunks SET state = 'fetching', updated = ? "
                "WHERE key = ? AND state = 'planned'",
                (time.time(), key),
            )
            return cursor.rowcount == 1

    def chunk_queued(
        self,
        key: str,
        job_id: int,
        path: Path,
        own_copy: bool,
        gap: bool,
        recorded: datetime | None = None,
    ) -> None:
        """The chunk is job `job_id`; `recorded`: its first frame's time, from the source."""
        when = None if recorded is None else recorded.timestamp()
        with self._transaction() as db:
            db.execute(
                "UPDATE sweep_chunks SET state = 'queued', job_id = ?, path = ?, own_copy = ?, "
                "gap = ?, recorded = ?, updated = ? WHERE key = ?",
                (job_id, str(path), int(own_copy), int(gap), when, time.time(), key),
            )

    def swept_recording_time(self, job_id: int) -> datetime | None:
        """When a swept job's recording began, as its source told it (the earliest chunk
        the job holds); None for a job that no sweep made."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(coalesce(recorded, start)) FROM sweep_chunks WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return _utc(row[0])

    def chunk_gap(self, key: str) -> None:
        """The chunk holds no data: a gap, which counts as covered."""
        with self._transaction() as db:
            db.execute(
                "UPDATE sweep_chunks SET state = 'gap', gap = 1, updated = ? WHERE key = ?",
                (time.time(), key),
            )

    def chunk_released(self, key: str) -> None:
        """A fetch that failed: the chunk waits for the next run."""
        with self._transaction() as db:
            db.execute(
                "UPDATE sweep_chunks SET state = 'planned', updated = ? "
                "WHERE key = ? AND state = 'fetching'",
                (time.time(), key),
            )

    def release_fetching(self) -> int:
        """At start, by the holder of the state folder: fetches cut short by a kill go back."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE sweep_chunks SET state = 'planned' WHERE state = 'fetching'"
            ).rowcount

    def chunks(self, source: str, keys: list[str] | None = None) -> list[ChunkRow]:
        query = "SELECT key, recording, start, end, state, job_id, gap FROM sweep_chunks "
        query += "WHERE source = ? ORDER BY start, recording"
        with self._lock:
            rows = self._db.execute(query, (source,)).fetchall()
        found = [ChunkRow(k, r, _utc(s), _utc(e), st, j, bool(g)) for k, r, s, e, st, j, g in rows]  # type: ignore[arg-type]
        return found if keys is None else [c for c in found if c.key in set(keys)]

    def settle(
        self, sweep: str, *, source: str | None = None, own_done: list[Path] | None = None
    ) -> datetime | None:
        """Mark the chunks of `source` (the sweep's source identity; default: the sweep's
        name) whose jobs are final as settled, then move the sweep's watermark; returns it.
        The own copies of chunks now packaged are appended to `own_done` (to delete)."""
        source = source or sweep
        final = ", ".join(f"'{s}'" for s in _FINAL)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT c.key, c.path, c.own_copy, j.state FROM sweep_chunks c "
                "JOIN jobs j ON j.id = c.job_id "
                f"WHERE c.source = ? AND c.state = 'queued' AND j.state IN ({final})",
                (source,),
            ).fetchall()
            for key, path, own, state in rows:
                db.execute("UPDATE sweep_chunks SET state = 'settled' WHERE key = ?", (key,))
                if own and own_done is not None and state in ("done", "duplicate"):
                    own_done.append(Path(path))
            return self._advance(sweep, source)

    def _advance(self, sweep: str, source: str) -> datetime | None:
        """The sweep's watermark over its source's chunks: a chunk another sweep over the
        same source recorded holds it back until settled, as its own would."""
        row = self._db.execute(
            "SELECT covered_to, listed_to FROM sweep_sources WHERE name = ?", (sweep,)
        ).fetchone()
        if row is None or row[1] is None:
            return _utc(row[0]) if row else None
        covered, listed = row
        first_open = self._db.execute(
            "SELECT min(start) FROM sweep_chunks WHERE source = ? AND start >= ? "
            "AND state NOT IN ('gap', 'settled')",
            (source, covered or 0),
        ).fetchone()[0]
        reach = listed if first_open is None else min(listed, first_open)
        if covered is None or reach > covered:
            self._db.execute(
                "UPDATE sweep_sources SET covered_to = ? WHERE name = ?", (reach, sweep)
            )
            covered = reach
        return _utc(covered)

    def listed(self, source: str, start: datetime, reach: datetime) -> None:
        """A run's listing was complete from `start` to `reach`: everything in it is
        recorded as chunks. Clears the source's error."""
        now = time.time()
        with self._transaction() as db:
            self._ensure(source)
            db.execute(
                "UPDATE sweep_sources SET listed_to = max(coalesce(listed_to, 0), ?), "
                "covered_to = coalesce(covered_to, ?), last_run = ?, last_error = NULL, "
                "failures = 0, next_attempt = NULL WHERE name = ?",
                (reach.timestamp(), start.timestamp(), now, source),
            )

    def failed(self, source: str, error: str) -> int:
        """A run failed (the source could not answer); returns the failures in a row."""
        with self._transaction() as db:
            self._ensure(source)
            db.execute(
                "UPDATE sweep_sources SET last_run = ?, last_error = ?, failures = failures + 1 "
                "WHERE name = ?",
                (time.time(), error, source),
            )
            row = db.execute("SELECT failures FROM sweep_sources WHERE name = ?", (source,))
            return int(row.fetchone()[0])

    def retry_at(self, source: str, when: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE sweep_sources SET next_attempt = ? WHERE name = ?", (when, source))

    def own_copies(self, source: str) -> set[str]:
        """The paths of privmask's own copies that chunks still hold."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM sweep_chunks WHERE source = ? AND own_copy = 1 "
                "AND state = 'queued'",
                (source,),
            ).fetchall()
        return {row[0] for row in rows}

    def outcome(self, keys: tuple[str, ...]) -> dict[str, int]:
        """What became of these chunks, counted: `packaged`, `gap`, `waiting for review`,
        `quarantined` (or rejected), `working` (a job under way, or a fetch), `left` (not
        fetched)."""
        states = ("packaged", "gap", "waiting for review", "quarantined", "working", "left")
        counts = dict.fromkeys(states, 0)
        with self._lock:
            for key in keys:
                row = self._db.execute(
                    "SELECT c.state, j.state FROM sweep_chunks c "
                    "LEFT JOIN jobs j ON j.id = c.job_id WHERE c.key = ?",
                    (key,),
                ).fetchone()
                counts[_outcome(row)] += 1
        return counts

    def with_gaps(self, keys: tuple[str, ...] | None = None, source: str | None = None) -> int:
        """How many chunks had time without data: of a source identity (gaps and chunks made
        around a gap), or of `keys` (the chunks made around a gap only)."""
        with self._lock:
            if source is not None:
                row = self._db.execute(
                    "SELECT count(*) FROM sweep_chunks WHERE source = ? AND gap = 1", (source,)
                ).fetchone()
                return int(row[0])
            found = 0
            for key in keys or ():
                row = self._db.execute(
                    "SELECT gap FROM sweep_chunks WHERE key = ? AND state != 'gap'", (key,)
                )
                found += bool((row.fetchone() or (0,))[0])
            return found

    def source_status(self, source: str) -> SourceStatus:
        with self._lock:
            row = self._db.execute(
                "SELECT covered_to, last_run, last_error, failures, next_attempt "
                "FROM sweep_sources WHERE name = ?",
                (source,),
            ).fetchone()
        if row is None:
            return SourceStatus(source, None, None, None, 0, None)
        return SourceStatus(source, _utc(row[0]), row[1], row[2], row[3], row[4])

    def _ensure(self, source: str) -> None:
        self._db.execute(
            "INSERT INTO sweep_sources (name) VALUES (?) ON CONFLICT(name) DO NOTHING", (source,)
        )
