"""The durable outbox: every accepted point waits here, on disk, until the server confirmed it.

SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``, driven from one worker thread
so the event loop never blocks on an fsync. Why this shape:

- **Group commits.** The engine stages points, heart-rate samples and the sampler's state as they
  come and calls :meth:`Outbox.commit` at least once a second: one transaction, one fsync, for
  everything of that second. A SIGKILL or a power cut loses at most that last second, and what
  is on disk is always consistent: the points and the sampler state that produced them commit
  together, so a restarted sampler continues exactly where the committed points end.
- **Confirmation watermark.** Points go out oldest first and the server confirms them in order, so
  "what is sent" is one timestamp per activity (``sent_upto``), updated in its own small
  transaction right after the server's reply. Pending = the activity's points after the mark.
  Sent points stay until the activity is pruned: ``tracker export`` and the GPX fallback need the
  whole ride.
- **Only durable points are offered to the uplink.** A point the server has seen must never be
  re-synthesized differently after a crash (the server rejects an older timestamp it does not
  hold), so the uplink sends what is committed. Only when the disk has failed (memory mode, below)
  does it send from memory, because then nothing is durable anyway.
- **Failing storage.** Disk full, a read-only data dir, a corrupt database: one clear log line, the
  outbox switches to *memory mode* (``storage_error`` says why; status and the LED show it) and
  keeps working from memory; what the database already holds is never deleted or rewritten.
  Every ``retry_s`` it tries the disk again and writes what it kept in memory (not for a corrupt
  file: that one is left alone for the user to move aside).
- **Bounds.** ``PRAGMA max_page_count`` enforces ``max_mb``; finished activities older than
  ``keep_days`` are pruned, and oldest finished ones first when the file nears its bound. Points
  still waiting to be sent are never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tracker.logs import get_logger
from tracker.model import HeartRateSample, Point
from tracker.ride.activity import FINISHED, PRUNABLE, Activity, ActivityState

log = get_logger("outbox")
T = TypeVar("T")

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


@dataclass
class ActivityRecord:
    """An activity with its counters and its pending points, as kept in memory."""

    activity: Activity
    created_at: float
    finished_at: float | None = None
    sent_upto: int = -1
    hr_sent_upto: int = -1
    points_recorded: int = 0
    requests: int = 0
    bytes_sent: int = 0
    last_upload_at: float | None = None
    # Durable points/samples after the watermarks, oldest first (what the uplink may send).
    pending: list[Point] = field(default_factory=list)
    pending_hr: list[HeartRateSample] = field(default_factory=list)
    # Staged since the last commit (not yet on disk).
    staged: list[Point] = field(default_factory=list)
    staged_hr: list[HeartRateSample] = field(default_factory=list)
    dirty: bool = True  # the activities row needs writing

    @property
    def local_id(self) -> int:
        return self.activity.local_id


@dataclass(frozen=True)
class SamplerState:
    snapshot: dict[str, Any]
    last_fix_unix: float | None


class Outbox:
    """The durable queue. All methods are called from the event loop; SQLite runs in one thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_mb: float = 200.0,
        keep_days: float = 30.0,
        retry_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.keep_days = keep_days
        self.retry_s = retry_s
        self._wall = wall_clock
        self._mono = monotonic
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._records: dict[int, ActivityRecord] = {}
        self._sampler: dict[int, SamplerState] = {}
        self._sampler_dirty: set[int] = set()
        self.storage_error: str | None = None
        self._corrupt = False
        self._next_retry = 0.0
        self.commits = 0
        self._lock = asyncio.Lock()
        self._in_flight: _Batch | None = None  # the batch a commit is writing right now
        # Sampler snapshots staged with their points, evaluated when the next commit takes them.
        self._sampler_source: dict[int, Callable[[], SamplerState]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Open or create the database and load every open activity with its pending points."""
        try:
            loaded = await self._run(self._open_sync)
        except (sqlite3.Error, OSError) as exc:
            self._enter_memory_mode(exc, during="open")
            loaded = await self._run(self._salvage_read_only)
        records, samplers = loaded
        self._records = {r.local_id: r for r in records}
        self._sampler = samplers
        for rec in records:
            rec.dirty = False

    async def close(self) -> None:
        """Commit what is staged and close the database (SIGTERM path)."""
        with contextlib.suppress(Exception):
            await self.commit()
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ activities

    def activities(self) -> list[ActivityRecord]:
        return sorted(self._records.values(), key=lambda r: r.local_id)

    def record(self, local_id: int) -> ActivityRecord:
        return self._records[local_id]

    def current(self) -> ActivityRecord | None:
        """The activity that is recording, if any (at most one)."""
        for rec in self.activities():
            if rec.activity.state is ActivityState.RECORDING:
                return rec
        return None

    async def create_activity(self, title: str) -> ActivityRecord:
        """Create and persist a recording activity before anything is sent for it."""
        if any(r.activity.title == title for r in self._records.values()):
            raise ValueError(f"title {title!r} already used")
        local_id = max(self._records, default=0) + 1
        rec = ActivityRecord(
            activity=Activity(local_id=local_id, title=title, state=ActivityState.RECORDING),
            created_at=self._wall(),
        )
        self._records[local_id] = rec
        await self.commit()
        return rec

    async def update_activity(self, activity: Activity) -> None:
        """Persist a new state / remote id / upload_only flag at once (its own transaction)."""
        rec = self._records[activity.local_id]
        if activity.state in FINISHED and rec.finished_at is None:
            rec.finished_at = self._wall()
        rec.activity = activity
        rec.dirty = True
        await self.commit()

    def count_request(self, local_id: int, nbytes: int, *, ok: bool) -> None:
        rec = self._records[local_id]
        rec.requests += 1
        rec.bytes_sent += nbytes
        if ok:
            rec.last_upload_at = self._wall()
        rec.dirty = True

    # ------------------------------------------------------------------ points

    def stage(
        self,
        local_id: int,
        points: Sequence[Point] = (),
        hr: Sequence[HeartRateSample] = (),
        sampler: Callable[[], SamplerState] | None = None,
    ) -> None:
        """Queue points/samples for the next group commit, and ``sampler``: a snapshot function of
        the sampler that made the points, called when that commit takes its batch (in the same
        loop turn as the points, so the state on disk matches exactly the points committed,
        whatever was fed between this call and the commit)."""
        rec = self._records[local_id]
        if points:
            rec.staged.extend(points)
            rec.points_recorded += len(points)
            rec.dirty = True
        if hr:
            rec.staged_hr.extend(hr)
        if sampler is not None:
            self._sampler_source[local_id] = sampler
            self._sampler_dirty.add(local_id)

    def sampler_state(self, local_id: int) -> SamplerState | None:
        return self._sampler.get(local_id)

    def pending(self, local_id: int, limit: int) -> tuple[list[Point], list[HeartRateSample]]:
        """The oldest ``limit`` unsent points, and the unsent HR samples up to the last of them.

        With no point waiting, HR samples alone are offered (a strap may outlive the fix).
        """
        rec = self._records[local_id]
        points = rec.pending[:limit]
        if points and len(rec.pending) > limit:
            last = points[-1].timestamp
            hr = [s for s in rec.pending_hr if s.timestamp <= last]
        else:
            hr = list(rec.pending_hr)
        return points, hr

    def pending_count(self, local_id: int | None = None) -> int:
        recs = self._records.values() if local_id is None else [self._records[local_id]]
        return sum(len(r.pending) for r in recs)

    def all_sent(self, local_id: int) -> bool:
        """No point of this activity waits, neither committed nor still staged for the next
        commit (a stop must not overtake the sampler's last points on their way to disk)."""
        rec = self._records[local_id]
        return not rec.pending and self.settled(local_id)

    def settled(self, local_id: int) -> bool:
        """Every staged point of this activity is already sendable (committed, or held in
        memory because the disk failed): nothing is on its way to the pending list."""
        rec = self._records[local_id]
        flight = self._in_flight
        if flight is not None and (flight.points.get(local_id) or flight.hr.get(local_id)):
            return False  # taken off the stage by a commit that is still writing them
        known = max(rec.sent_upto, rec.pending[-1].timestamp if rec.pending else -1)
        known_hr = max(rec.hr_sent_upto, rec.pending_hr[-1].timestamp if rec.pending_hr else -1)
        return all(p.timestamp <= known for p in rec.staged) and all(
            s.timestamp <= known_hr for s in rec.staged_hr
        )

    def unsaved_count(self) -> int:
        return sum(len(r.staged) for r in self._records.values())

    async def confirm(
        self, local_id: int, points: Sequence[Point], hr: Sequence[HeartRateSample]
    ) -> None:
        """The server confirmed these (the oldest pending ones): move the watermarks, durably."""
        rec = self._records[local_id]
        if points:
            rec.sent_upto = max(rec.sent_upto, points[-1].timestamp)
            rec.pending = [p for p in rec.pending if p.timestamp > rec.sent_upto]
        if hr:
            rec.hr_sent_upto = max(rec.hr_sent_upto, hr[-1].timestamp)
            rec.pending_hr = [s for s in rec.pending_hr if s.timestamp > rec.hr_sent_upto]
        rec.dirty = True
        await self.commit()

    async def all_points(self, local_id: int) -> list[Point]:
        """Every point of an activity (sent or not), oldest first: for GPX export and upload."""
        stored: list[Point] = []
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                stored = await self._run(lambda: self._points_sync(local_id))
        rec = self._records.get(local_id)
        extra = (rec.pending + rec.staged) if rec else []
        by_ts = {p.timestamp: p for p in stored}
        for p in extra:
            by_ts.setdefault(p.timestamp, p)
        return [by_ts[t] for t in sorted(by_ts)]

    # ------------------------------------------------------------------ commit

    async def commit(self) -> None:
        """One transaction for everything staged (points, HR, sampler state, changed rows)."""
        async with self._lock:
            batch = self._take_batch()
            if not batch.has_work():
                return
            self._in_flight = batch
            # Once a batch is off the stage it must reach the disk (or the memory copy) even if
            # this commit is cancelled mid-write, as a clean shutdown cancels the commit task:
            # the write runs shielded and a cancellation waits for it before going on.
            write = asyncio.ensure_future(self._commit_batch(batch))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(write)
                raise

    async def _commit_batch(self, batch: _Batch) -> None:
        try:
            await self._write_batch(batch)
        finally:
            self._in_flight = None

    async def _write_batch(self, batch: _Batch) -> None:
        if self.storage_error is not None and not self._may_retry_disk():
            self._keep_in_memory(batch, durable=False)
            return
        try:
            await self._run(lambda: self._write_sync(batch))
        except (sqlite3.Error, OSError) as exc:
            if self.storage_error is None:
                self._enter_memory_mode(exc, during="commit")
            self._next_retry = self._mono() + self.retry_s
            self._keep_in_memory(batch, durable=False)
            return
        if self.storage_error is not None:
            log.warning(
                "storage is writable again; memory-held points are on disk now",
                path=str(self.path),
            )
            self.storage_error = None
        self.commits += 1
        self._keep_in_memory(batch, durable=True)

    def _may_retry_disk(self) -> bool:
        return not self._corrupt and self._mono() >= self._next_retry

    def _take_batch(self) -> _Batch:
        for local_id, snapshot in self._sampler_source.items():
            self._sampler[local_id] = snapshot()
        self._sampler_source.clear()
        batch = _Batch()
        for rec in self._records.values():
            if rec.staged or rec.staged_hr or rec.dirty:
                batch.rows.append(_row(rec))
                batch.points[rec.local_id] = rec.staged
                batch.hr[rec.local_id] = rec.staged_hr
                rec.staged, rec.staged_hr, rec.dirty = [], [], False
        for local_id in self._sampler_dirty:
            # Serialised here, in the loop, in the same turn as the points are taken: the live
            # sampler may share structures with its snapshot and keeps changing meanwhile.
            state = self._sampler[local_id]
            batch.samplers[local_id] = (
                json.dumps(state.snapshot, separators=(",", ":")),
                state.last_fix_unix,
            )
        self._sampler_dirty = set()
        return batch

    def _keep_in_memory(self, batch: _Batch, *, durable: bool) -> None:
        """After a commit: points become sendable. After a failed one, they stay queued for the
        next disk attempt *and* become sendable (memory mode: nothing is durable anyway)."""
        for local_id, points in batch.points.items():
            rec = self._records[local_id]
            _append_newer(rec.pending, points, rec.sent_upto)
            _append_newer(rec.pending_hr, batch.hr[local_id], rec.hr_sent_upto)
            if not durable:
                # Kept for the next disk attempt as well (they are not on disk yet).
                rec.staged[:0] = points
                rec.staged_hr[:0] = batch.hr[local_id]
                rec.dirty = True
        if not durable:
            self._sampler_dirty.update(batch.samplers)

    def _enter_memory_mode(self, exc: BaseException, *, during: str) -> None:
        reason = _describe(exc, self.path)
        self._corrupt = self._corrupt or _is_corrupt(exc)
        self.storage_error = reason
        log.error(
            "outbox storage failed; running from memory, nothing already stored is lost",
            reason=reason,
            during=during,
            path=str(self.path),
        )

    # ------------------------------------------------------------------ pruning

    async def prune(self) -> int:
        """Drop finished activities older than keep_days, and oldest finished ones while the file
        is near its bound. Returns how many activities were removed."""
        if self._db is None or self.storage_error is not None:
            return 0
        cutoff = self._wall() - self.keep_days * 86400
        finished = [
            r
            for r in self.activities()
            if r.activity.state in FINISHED and r.finished_at is not None and not r.pending
        ]
        old = [r.local_id for r in finished if r.finished_at is not None and r.finished_at < cutoff]
        try:
            removed = await self._run(lambda: self._prune_sync(old, [r.local_id for r in finished]))
        except (sqlite3.Error, OSError) as exc:
            log.warning("pruning failed", reason=_describe(exc, self.path))
            return 0
        for local_id in removed:
            self._records.pop(local_id, None)
            self._sampler.pop(local_id, None)
        if removed:
            log.info("pruned finished activities", count=len(removed))
        return len(removed)

    # ------------------------------------------------------------------ thread side

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _open_sync(self) -> tuple[list[ActivityRecord], dict[int, SamplerState]]:
        db = self._connect()
        try:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode={mode})")
            db.execute("PRAGMA synchronous=FULL")
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            db.execute(f"PRAGMA max_page_count={max(64, self.max_bytes // page_size)}")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            loaded = _load(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        return loaded

    def _salvage_read_only(self) -> tuple[list[ActivityRecord], dict[int, SamplerState]]:
        """Storage failed at open: read what we can so stored points are still sent."""
        if not self.path.exists() or self._corrupt:
            return [], {}
        last: sqlite3.Error | None = None
        # mode=ro reads the WAL too but needs to create the -shm file; immutable=1 works in a
        # read-only directory (after a clean close the WAL is checkpointed into the file).
        for params in ("mode=ro", "mode=ro&immutable=1"):
            try:
                db = sqlite3.connect(f"file:{self.path}?{params}", uri=True, isolation_level=None)
                db.row_factory = sqlite3.Row
                try:
                    loaded = _load(db)
                finally:
                    db.close()
                log.warning(
                    "outbox read read-only: its waiting points will still be sent",
                    activities=len(loaded[0]),
                )
                return loaded
            except sqlite3.Error as exc:
                last = exc
        assert last is not None
        self._corrupt = self._corrupt or _is_corrupt(last)
        log.error("outbox cannot be read either", reason=_describe(last, self.path))
        return [], {}

    def _close_sync(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _write_sync(self, batch: _Batch) -> None:
        if self._db is None:
            self._open_sync()  # a retry after a failed open (read-only dir fixed, disk freed)
        db = self._db
        assert db is not None
        try:
            self._write_tx(db, batch)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            # At the storage bound: make room from finished activities, then try once more.
            finished = [
                int(r[0])
                for r in db.execute(
                    "SELECT id FROM activities WHERE state IN "  # noqa: S608 - our own constants
                    f"({','.join(repr(s.value) for s in sorted(PRUNABLE, key=str))}) ORDER BY id"
                )
            ]
            self._prune_sync([], finished, force=True)
            self._write_tx(db, batch)

    @staticmethod
    def _write_tx(db: sqlite3.Connection, batch: _Batch) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO activities(id, title, state, remote_id, upload_only, created_at,"
                " finished_at, sent_upto, hr_sent_upto, points_recorded, requests, bytes_sent,"
                " last_upload_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET state=excluded.state,"
                " remote_id=excluded.remote_id, upload_only=excluded.upload_only,"
                " finished_at=excluded.finished_at, sent_upto=excluded.sent_upto,"
                " hr_sent_upto=excluded.hr_sent_upto, points_recorded=excluded.points_recorded,"
                " requests=excluded.requests, bytes_sent=excluded.bytes_sent,"
                " last_upload_at=excluded.last_upload_at",
                batch.rows,
            )
            for local_id, points in batch.points.items():
                db.executemany(
                    "INSERT OR IGNORE INTO points(activity_id, timestamp, lat, lon, ele)"
                    " VALUES (?,?,?,?,?)",
                    ((local_id, p.timestamp, p.lat, p.lon, p.ele) for p in points),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO heart_rate(activity_id, timestamp, hr) VALUES (?,?,?)",
                    ((local_id, s.timestamp, s.hr) for s in batch.hr[local_id]),
                )
            db.executemany(
                "INSERT INTO sampler_state(activity_id, snapshot, last_fix_unix) VALUES (?,?,?)"
                " ON CONFLICT(activity_id) DO UPDATE SET snapshot=excluded.snapshot,"
                " last_fix_unix=excluded.last_fix_unix",
                ((i, text, last) for i, (text, last) in batch.samplers.items()),
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _points_sync(self, local_id: int) -> list[Point]:
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT timestamp, lat, lon, ele FROM points WHERE activity_id=? ORDER BY timestamp",
            (local_id,),
        ).fetchall()
        return [Point(int(r[0]), float(r[1]), float(r[2]), r[3]) for r in rows]

    def _prune_sync(
        self, old: Iterable[int], finished: Sequence[int], *, force: bool = False
    ) -> list[int]:
        db = self._db
        assert db is not None
        removed = list(old)
        if force or self._used_bytes(db) > 0.8 * self.max_bytes:
            # Oldest finished first, half of them at a time, until under 80 % of the bound.
            candidates = [i for i in finished if i not in removed]
            while candidates and (force or self._used_bytes(db) > 0.8 * self.max_bytes):
                take = candidates[: max(1, len(candidates) // 2)]
                candidates = candidates[len(take) :]
                self._delete(db, take)
                removed.extend(take)
                force = False
        self._delete(db, removed)
        return removed

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: Sequence[int]) -> None:
        if not ids:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for table, col in (
                ("points", "activity_id"),
                ("heart_rate", "activity_id"),
                ("sampler_state", "activity_id"),
                ("activities", "id"),
            ):
                db.executemany(f"DELETE FROM {table} WHERE {col}=?", ((i,) for i in ids))  # noqa: S608
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA incremental_vacuum")

    @staticmethod
    def _used_bytes(db: sqlite3.Connection) -> int:
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * page_size

    def used_bytes(self) -> int | None:
        """Bytes used in the database file (status); None in memory mode."""
        if self._db is None:
            return None
        try:
            return self._used_bytes(self._db)
        except sqlite3.Error:
            return None


@dataclass
class _Batch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    points: dict[int, list[Point]] = field(default_factory=dict)
    hr: dict[int, list[HeartRateSample]] = field(default_factory=dict)
    samplers: dict[int, tuple[str, float | None]] = field(default_factory=dict)  # JSON text

    def has_work(self) -> bool:
        return bool(self.rows or self.samplers)


def _row(rec: ActivityRecord) -> tuple[Any, ...]:
    a = rec.activity
    return (
        a.local_id,
        a.title,
        a.state.value,
        a.remote_id,
        int(a.upload_only),
        rec.created_at,
        rec.finished_at,
        rec.sent_upto,
        rec.hr_sent_upto,
        rec.points_recorded,
        rec.requests,
        rec.bytes_sent,
        rec.last_upload_at,
    )


def _load(db: sqlite3.Connection) -> tuple[list[ActivityRecord], dict[int, SamplerState]]:
    records: list[ActivityRecord] = []
    for r in db.execute("SELECT * FROM activities ORDER BY id"):
        activity = Activity(
            local_id=int(r["id"]),
            title=str(r["title"]),
            state=ActivityState(r["state"]),
            remote_id=r["remote_id"],
            upload_only=bool(r["upload_only"]),
        )
        rec = ActivityRecord(
            activity=activity,
            created_at=float(r["created_at"]),
            finished_at=r["finished_at"],
            sent_upto=int(r["sent_upto"]),
            hr_sent_upto=int(r["hr_sent_upto"]),
            points_recorded=int(r["points_recorded"]),
            requests=int(r["requests"]),
            bytes_sent=int(r["bytes_sent"]),
            last_upload_at=r["last_upload_at"],
        )
        rec.pending = [
            Point(int(p[0]), float(p[1]), float(p[2]), p[3])
            for p in db.execute(
                "SELECT timestamp, lat, lon, ele FROM points WHERE activity_id=? AND timestamp>?"
                " ORDER BY timestamp",
                (activity.local_id, rec.sent_upto),
            )
        ]
        rec.pending_hr = [
            HeartRateSample(int(s[0]), int(s[1]))
            for s in db.execute(
                "SELECT timestamp, hr FROM heart_rate WHERE activity_id=? AND timestamp>?"
                " ORDER BY timestamp",
                (activity.local_id, rec.hr_sent_upto),
            )
        ]
        records.append(rec)
    samplers = {
        int(r[0]): SamplerState(json.loads(r[1]), r[2])
        for r in db.execute("SELECT activity_id, snapshot, last_fix_unix FROM sampler_state")
    }
    return records, samplers


def _append_newer(queue: list[Any], items: Sequence[Any], floor: int) -> None:
    """Append items newer than both the watermark and the queue's last one (a failed commit
    re-stages rows that are already pending: they must not be queued twice)."""
    last = queue[-1].timestamp if queue else floor
    last = max(last, floor)
    for item in items:
        if item.timestamp > last:
            queue.append(item)
            last = item.timestamp


def _is_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


def _is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or (
        "malformed" in text or "not a database" in text
    )


def _describe(exc: BaseException, path: Path) -> str:
    """One plain line a rider (or their log) can act on."""
    text = str(exc)
    if _is_corrupt(exc):
        return (
            f"the database {path} is corrupt ({text}); move it aside to start a new one "
            "(the tracker keeps running from memory meanwhile)"
        )
    if _is_full(exc):
        return f"no space left for {path} (disk full or storage.max_mb reached): {text}"
    read_only_dir = path.parent.is_dir() and not os.access(path.parent, os.W_OK)
    if (
        isinstance(exc, PermissionError)
        or read_only_dir
        or "readonly" in text
        or "read-only" in text
    ):
        return f"cannot write {path}: the data dir is read-only or not ours ({text})"
    return f"{path}: {text}"


def activity_with(rec: ActivityRecord, **changes: Any) -> Activity:
    """A changed copy of a record's activity (for ``Outbox.update_activity``)."""
    return replace(rec.activity, **changes)


def read_stored(data_dir: Path) -> list[tuple[ActivityRecord, list[Point]]]:
    """Every activity in a data dir's outbox with all its points, read-only (``tracker export``;
    safe while the service runs: WAL lets a reader in beside the writer)."""
    path = Path(data_dir) / DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no outbox at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        records, _ = _load(db)
        out = []
        for rec in records:
            rows = db.execute(
                "SELECT timestamp, lat, lon, ele FROM points WHERE activity_id=?"
                " ORDER BY timestamp",
                (rec.local_id,),
            ).fetchall()
            out.append((rec, [Point(int(r[0]), float(r[1]), float(r[2]), r[3]) for r in rows]))
        return out
    finally:
        db.close()
