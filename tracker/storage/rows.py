"""Rows ↔ values, written once: ``activities`` ↔ ``ActivityRecord``, ``points`` ↔ ``Point``,
``heart_rate`` ↔ ``HeartRateSample``, ``sampler_state`` ↔ ``SamplerState``; what a group commit
writes (a ``Batch``) and how whole activities are deleted.

Plain functions on a connection: they run in the outbox's worker thread (or in ``tracker
export``'s reader) and hold no state.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracker.model import HeartRateSample, Point
from tracker.ride.activity import Activity, ActivityState
from tracker.storage.records import ActivityRecord, SamplerState
from tracker.storage.schema import transaction

SqlValue = int | float | str | None
ActivityRow = tuple[SqlValue, ...]

# Rewrites every column of ``activities`` but its identity (id, title, created_at). Values in the
# order of ``activity_row``.
_UPSERT_ACTIVITY = (
    "INSERT INTO activities(id, title, state, remote_id, upload_only, created_at,"
    " finished_at, sent_upto, hr_sent_upto, points_recorded, requests, bytes_sent,"
    " last_upload_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(id) DO UPDATE SET state=excluded.state,"
    " remote_id=excluded.remote_id, upload_only=excluded.upload_only,"
    " finished_at=excluded.finished_at, sent_upto=excluded.sent_upto,"
    " hr_sent_upto=excluded.hr_sent_upto, points_recorded=excluded.points_recorded,"
    " requests=excluded.requests, bytes_sent=excluded.bytes_sent,"
    " last_upload_at=excluded.last_upload_at"
)


def activity_row(rec: ActivityRecord) -> ActivityRow:
    """The ``activities`` row of a record, taken in the loop (the record keeps changing while
    the thread writes)."""
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


def record_from_row(r: sqlite3.Row) -> ActivityRecord:
    activity = Activity(
        local_id=int(r["id"]),
        title=str(r["title"]),
        state=ActivityState(r["state"]),
        remote_id=r["remote_id"],
        upload_only=bool(r["upload_only"]),
    )
    return ActivityRecord(
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


def select_points(db: sqlite3.Connection, local_id: int, after: int = -1) -> list[Point]:
    """An activity's points newer than ``after`` (a watermark; -1: all), oldest first."""
    return [
        Point(int(r[0]), float(r[1]), float(r[2]), r[3])
        for r in db.execute(
            "SELECT timestamp, lat, lon, ele FROM points WHERE activity_id=? AND timestamp>?"
            " ORDER BY timestamp",
            (local_id, after),
        )
    ]


def select_hr(db: sqlite3.Connection, local_id: int, after: int = -1) -> list[HeartRateSample]:
    """An activity's heart-rate samples newer than ``after``, oldest first."""
    return [
        HeartRateSample(int(r[0]), int(r[1]))
        for r in db.execute(
            "SELECT timestamp, hr FROM heart_rate WHERE activity_id=? AND timestamp>?"
            " ORDER BY timestamp",
            (local_id, after),
        )
    ]


@dataclass
class Loaded:
    """Everything the outbox keeps in memory, as read at open: every activity, what waits to be
    sent for it (after its watermarks), and the sampler states."""

    records: list[ActivityRecord] = field(default_factory=list)
    pending: dict[int, list[Point]] = field(default_factory=dict)
    pending_hr: dict[int, list[HeartRateSample]] = field(default_factory=dict)
    samplers: dict[int, SamplerState] = field(default_factory=dict)


def load(db: sqlite3.Connection) -> Loaded:
    loaded = Loaded()
    for r in db.execute("SELECT * FROM activities ORDER BY id"):
        rec = record_from_row(r)
        loaded.records.append(rec)
        loaded.pending[rec.local_id] = select_points(db, rec.local_id, rec.sent_upto)
        loaded.pending_hr[rec.local_id] = select_hr(db, rec.local_id, rec.hr_sent_upto)
    loaded.samplers = {
        int(r[0]): SamplerState(json.loads(r[1]), r[2])
        for r in db.execute("SELECT activity_id, snapshot, last_fix_unix FROM sampler_state")
    }
    return loaded


@dataclass
class Batch:
    """One group commit: changed activity rows, new points and samples, sampler states."""

    rows: list[ActivityRow] = field(default_factory=list)
    points: dict[int, list[Point]] = field(default_factory=dict)
    hr: dict[int, list[HeartRateSample]] = field(default_factory=dict)
    samplers: dict[int, tuple[str, float | None]] = field(default_factory=dict)  # JSON text

    def has_work(self) -> bool:
        return bool(self.rows or self.samplers)


def write_batch(db: sqlite3.Connection, batch: Batch) -> None:
    """The whole batch in one transaction: one fsync, all or nothing. Points already stored (a
    retry after a failed commit) are ignored, never duplicated."""
    with transaction(db):
        db.executemany(_UPSERT_ACTIVITY, batch.rows)
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


def delete_activities(db: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Remove whole activities (their points, samples, sampler state and row) in one
    transaction, then hand the freed pages back to the file system."""
    if not ids:
        return
    with transaction(db):
        for table, col in (
            ("points", "activity_id"),
            ("heart_rate", "activity_id"),
            ("sampler_state", "activity_id"),
            ("activities", "id"),
        ):
            db.executemany(f"DELETE FROM {table} WHERE {col}=?", ((i,) for i in ids))  # noqa: S608
    with contextlib.suppress(sqlite3.Error):
        db.execute("PRAGMA incremental_vacuum")
