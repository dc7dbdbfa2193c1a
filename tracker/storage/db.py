"""The outbox's SQLite side: one connection, used only from the outbox's worker thread.

Every method here blocks (an fsync per commit): the :class:`~tracker.storage.outbox.Outbox`
calls them through its one-thread executor, so the event loop never waits on the disk and the
connection never changes thread. Errors (``sqlite3.Error``, ``OSError``) go up unchanged: the
outbox decides what a failure means (memory mode, a retry, a warning). The one exception is the
read-only salvage, itself the fallback of a failure: it says what it could read.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from tracker.logs import get_logger
from tracker.model import HeartRateSample, Point
from tracker.storage import pruning
from tracker.storage.failures import describe, is_corrupt, is_full
from tracker.storage.records import ActivityRecord
from tracker.storage.rows import Batch, Loaded, load, select_hr, select_points, write_batch
from tracker.storage.schema import DB_NAME, connect, connect_read_only, used_bytes

log = get_logger("outbox")


class Database:
    """The outbox file: open, write a batch, read an activity's points, prune, close."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> Loaded:
        """Open or create the file and read what the outbox keeps in memory."""
        db = connect(self.path, self.max_bytes)
        try:
            loaded = load(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        return loaded

    def salvage_read_only(self) -> tuple[Loaded, bool]:
        """Storage failed at open: read what we can so stored points are still sent. Returns
        what was read (nothing when the file cannot be read either, said once) and whether the
        file is corrupt."""
        if not self.path.exists():
            return Loaded(), False
        last: sqlite3.Error | None = None
        # mode=ro reads the WAL too but needs to create the -shm file; immutable=1 works in a
        # read-only directory (after a clean close the WAL is checkpointed into the file).
        for params in ("mode=ro", "mode=ro&immutable=1"):
            try:
                with contextlib.closing(connect_read_only(self.path, params)) as db:
                    loaded = load(db)
            except sqlite3.Error as exc:
                last = exc
                continue
            log.warning(
                "outbox read read-only: its waiting points will still be sent",
                activities=len(loaded.records),
            )
            return loaded, False
        assert last is not None
        log.error("outbox cannot be read either", reason=describe(last, self.path))
        return Loaded(), is_corrupt(last)

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def write(self, batch: Batch) -> None:
        """One group commit. At the storage bound, make room from finished activities and try
        once more."""
        if self._db is None:
            # A retry after a failed open (read-only dir fixed, disk freed): the outbox's memory
            # is what counts now, nothing needs loading.
            self._db = connect(self.path, self.max_bytes)
        db = self._db
        try:
            write_batch(db, batch)
        except sqlite3.OperationalError as exc:
            if not is_full(exc):
                raise
            pruning.prune(db, [], pruning.finished_ids(db), self.max_bytes, force=True)
            write_batch(db, batch)

    def points(self, local_id: int) -> list[Point]:
        """Every stored point of an activity, oldest first."""
        if self._db is None:
            return []
        return select_points(self._db, local_id)

    def heart_rate(self, local_id: int) -> list[HeartRateSample]:
        """Every stored heart-rate sample of an activity, oldest first."""
        if self._db is None:
            return []
        return select_hr(self._db, local_id)

    def prune(self, old: Iterable[int], finished: Sequence[int]) -> list[int]:
        assert self._db is not None
        return pruning.prune(self._db, old, finished, self.max_bytes)

    def used_bytes(self) -> int | None:
        """Bytes used in the database file (status); None in memory mode."""
        if self._db is None:
            return None
        try:
            return used_bytes(self._db)
        except sqlite3.Error:
            return None


def read_stored(
    data_dir: Path,
) -> list[tuple[ActivityRecord, list[Point], list[HeartRateSample]]]:
    """Every activity in a data dir's outbox with all its points and heart-rate samples,
    read-only (``tracker export``; safe while the service runs: WAL lets a reader in beside the
    writer)."""
    path = Path(data_dir) / DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no outbox at {path}")
    with contextlib.closing(connect_read_only(path)) as db:
        return [
            (rec, select_points(db, rec.local_id), select_hr(db, rec.local_id))
            for rec in load(db).records
        ]
