"""One run of a sweep: window, listing, chunks, fetch, jobs; and the watermark settled.

A run takes `[covered, now - lag)` (the first run: `since`, or the previous site day),
lists the source, records each chunk by its key (a chunk recorded already is not made
again), fetches the chunks nobody has fetched into the sweep's private staging folder, and
takes each clip in as intake would, as a journal job the workers redact. `settle` moves the
watermark over chunks whose packages are durable (and gaps) and deletes privmask's own
copies of packaged chunks; never a folder source's file.

A source that cannot answer (SourceError): one log line naming it (never a password), the
run stops, the watermark waits, and the failures in a row are returned for the backoff.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from privmask.daemon.config import Config
from privmask.daemon.journal import Journal
from privmask.daemon.secrets import SecretError
from privmask.daemon.sweeps.plan import first_start, plan, window
from privmask.daemon.sweeps.scheduler import backoff
from privmask.daemon.sweeps.settings import SweepSpec
from privmask.daemon.sweeps.source import Chunk, NoData, SourceError, Span, SweepSource
from privmask.daemon.sweeps.sources import build_source
from privmask.daemon.sweeps.take import take_clip

log = structlog.get_logger("privmask.sweeps")


@dataclass(frozen=True)
class RunReport:
    sweep: str
    keys: tuple[str, ...] = ()  # every chunk of the window, made now or earlier
    queued: int = 0  # chunks made jobs by this run
    gaps: int = 0
    error: str | None = None
    failures: int = 0  # the source's errors in a row (0: it answered)
    busy: bool = False  # another run of this sweep was under way: nothing done


class SweepRunner:
    def __init__(self, config: Config, journal: Journal) -> None:
        self.config, self.journal = config, journal
        self.stopping = threading.Event()
        self._running = {s.name: threading.Lock() for s in config.sweeps}

    def spec(self, name: str) -> SweepSpec:
        found = next((s for s in self.config.sweeps if s.name == name), None)
        if found is None:
            raise KeyError(name)
        return found

    def staging(self, name: str) -> Path:
        """The sweep's private folder for fetched copies, under the state folder."""
        folder = self.config.state / "sweeps" / name
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def scheduled(self, name: str) -> int:
        """A scheduled (or catch-up) run; the source's failures in a row, for the retry."""
        return self.run(name).failures

    def run(self, name: str, span: Span | None = None, now: datetime | None = None) -> RunReport:
        """One run of sweep `name`: `span` given (a backfill), that window, leaving the
        watermark alone; else from the watermark to now less the lag."""
        lock = self._running[name]
        if not lock.acquire(blocking=False):
            log.info("sweep_busy", sweep=name)
            return RunReport(name, busy=True)
        try:
            return self._run(self.spec(name), span, now or datetime.now(UTC))
        finally:
            lock.release()

    def _run(self, spec: SweepSpec, span: Span | None, now: datetime) -> RunReport:
        name, backfill = spec.name, span is not None
        if span is None:
            start = first_start(now, self.config.timezone, spec.since)
            span = window(self.journal.source_status(name).covered_to, start, now, spec.delay)
            if span is None:
                return RunReport(name)
        try:
            source = build_source(spec, self.config.timezone)
            listing = source.list(span)
        except (SourceError, SecretError) as exc:
            return self._failed(name, str(exc))
        # chunks are keyed by the source, not the sweep: two sweeps over one make each once
        planned = plan(
            spec.identity(), listing, span, spec.chunk, cuts=source.cuts, camera=spec.camera
        )
        waiting = self.journal.record_chunks(planned.chunks, by_recording=not source.cuts)
        if not backfill:  # recorded first: the watermark never passes an unrecorded chunk
            self.journal.listed(name, span.start, planned.reach)
        reach = planned.reach.isoformat()
        log.info("sweep_listed", sweep=name, start=span.start.isoformat(), reach=reach,
                 chunks=len(planned.chunks), new=len(waiting))  # fmt: skip
        queued = gaps = 0
        for chunk in waiting:
            if self.stopping.is_set():
                break
            try:
                made = self._fetch(source, spec, chunk)
            except SourceError as exc:
                return self._failed(name, str(exc), planned.chunks)
            queued, gaps = queued + made, gaps + (not made)
        self.settle(name)
        keys = tuple(c.key for c in planned.chunks)
        return RunReport(name, keys, queued, gaps)

    def _fetch(self, source: SweepSource, spec: SweepSpec, chunk: Chunk) -> bool:
        """Fetch and take one chunk; True: a job, False: a gap (or taken by another)."""
        journal = self.journal
        if not journal.take_chunk(chunk.key):
            return False
        try:
            fetched = source.fetch(chunk, self.staging(spec.name))
        except NoData:
            journal.chunk_gap(chunk.key)
            log.info("sweep_gap", sweep=spec.name, recording=chunk.recording,
                     start=chunk.start.isoformat(), end=chunk.end.isoformat())  # fmt: skip
            return False
        except BaseException:
            journal.chunk_released(chunk.key)
            raise
        root = self.staging(spec.name) if fetched.own_copy else self._folder(spec)
        try:
            job = take_clip(self.config, journal, fetched.path, root, chunk.camera)
        except OSError as exc:
            journal.chunk_released(chunk.key)
            raise SourceError(f"{spec.name}: {fetched.path.name}: {exc.strerror}") from None
        gap = bool(fetched.gaps)
        journal.chunk_queued(chunk.key, job, fetched.path, fetched.own_copy, gap, fetched.start)
        return True

    def _folder(self, spec: SweepSpec) -> Path:
        return Path(getattr(spec.source, "folder", "/"))

    def _failed(self, name: str, error: str, chunks: tuple[Chunk, ...] = ()) -> RunReport:
        """One line (the source's message names it, never a password); the watermark waits."""
        failures = self.journal.failed(name, error)
        retry = datetime.now(UTC) + backoff(failures)
        self.journal.retry_at(name, retry.timestamp())
        log.error("sweep_source_failed", sweep=name, error=error, failures=failures,
                  retry=retry.isoformat())  # fmt: skip
        return RunReport(name, tuple(c.key for c in chunks), error=error, failures=failures)

    def settle(self, name: str | None = None) -> None:
        """Move the watermarks over packaged chunks; delete own copies now packaged."""
        for spec in self.config.sweeps:
            if name is not None and spec.name != name:
                continue
            own: list[Path] = []
            self.journal.settle(spec.name, source=spec.identity(), own_done=own)
            # only files privmask wrote into a sweep's staging folder (another sweep over the
            # same source may have fetched a chunk this one settles)
            staging = self.config.state / "sweeps"
            for path in own:
                if staging in path.parents:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def start_clean(self) -> None:
        """At start, by the holder of the state folder: fetches cut short go back; copies
        that no chunk records (a kill between fetch and job) are removed."""
        self.journal.release_fetching()
        for spec in self.config.sweeps:
            staging = self.config.state / "sweeps" / spec.name
            kept = self.journal.own_copies(spec.identity())
            for path in staging.iterdir() if staging.is_dir() else ():
                if path.is_file() and str(path) not in kept:
                    path.unlink(missing_ok=True)
