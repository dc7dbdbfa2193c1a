"""The outbox's SQLite file: its name, its tables, how a connection to it is opened and set up,
and the one way a transaction is written.

WAL with ``synchronous=FULL``: a committed transaction survives a power cut, and a reader
(``tracker export``) can read beside the writer. ``max_page_count`` turns ``storage.max_mb``
into SQLite's own "database or disk is full", handled like a full disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tracker.storage.files import private_database, private_dir

SCHEMA_VERSION = 1
DB_NAME = "outbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    remote_id INTEGER,
    upload_only INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL,
    sent_upto INTEGER NOT NULL DEFAULT -1,
    hr_sent_upto INTEGER NOT NULL DEFAULT -1,
    points_recorded INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    last_upload_at REAL
);
CREATE TABLE IF NOT EXISTS points (
    activity_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    ele REAL,
    PRIMARY KEY (activity_id, timestamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heart_rate (
    activity_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    hr INTEGER NOT NULL,
    PRIMARY KEY (activity_id, timestamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sampler_state (
    activity_id INTEGER PRIMARY KEY,
    snapshot TEXT NOT NULL,
    last_fix_unix REAL
);
"""


def connect(path: Path, max_bytes: int) -> sqlite3.Connection:
    """Open (or create) the database, private to this user, in WAL mode with the schema."""
    private_dir(path.parent)
    private_database(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode={mode})")
        db.execute("PRAGMA synchronous=FULL")
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute(f"PRAGMA max_page_count={max(64, max_bytes // page_size)}")
        db.executescript(_SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        db.close()
        raise
    return db


def connect_read_only(path: Path, params: str = "mode=ro") -> sqlite3.Connection:
    """A reader that never writes the file (``tracker export``, or salvage after a failed open).
    ``mode=ro`` reads the WAL too but needs to create the -shm file; ``mode=ro&immutable=1``
    works in a read-only directory."""
    db = sqlite3.connect(f"file:{path}?{params}", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; anything raised (a cancelled thread included) rolls
    back, so a failed write leaves the file exactly as before."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes in use in the file (pages minus free pages): what ``max_mb`` bounds."""
    page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    return (pages - free) * page_size
