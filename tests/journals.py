"""A journal as an earlier privmask left it, for the tests of its upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from privmask.daemon.journal_schema import configure, migrate


def old_journal(path: Path, version: int) -> sqlite3.Connection:
    """A journal at `path` with schema `version`, as the code made it then; the connection is
    in autocommit for the test's own rows, and the caller closes it."""
    db = sqlite3.connect(path, isolation_level=None)
    configure(db, path, 5.0)
    db.execute("BEGIN IMMEDIATE")
    migrate(db, path, target=version)
    db.execute("COMMIT")
    return db
