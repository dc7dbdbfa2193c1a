"""Rows ↔ values, written once: ``activities`` ↔ ``ActivityRecord``, ``points`` ↔ ``Point``,
``heart_rate`` ↔ ``HeartRateSample``, ``sampler_state`` ↔ ``SamplerState``; what a group commit
writes (a ``Batch``) and how whole activities are deleted.

Plain functions on a connection: they run in the outbox's worker thread (or in ``tracker
export``'s reader) and hold no state.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tracker.model import HeartRateSample, Point
from tracker.ride.activity import Activity, ActivityState
from tracker.storage.records import ActivityRecord, SamplerState
from tracker.storage.schema import transaction

SqlValue = int | float | str | None
# The sampler's snapshot as stored: pickle of its plain data (dicts, lists, floats, ...), not
# JSON. It is written at every group commit and JSON's float repr made it the largest cost of a
# commit (~1.9 ms for a 40 KB snapshot mid-ride against ~70 µs); binary floats round-trip
# exactly. Rows written as JSON text by earlier versions are still read.
_SNAPSHOT_PROTOCOL = 5


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused, so a tampered
    database can give a wrong snapshot but never run code."""

    def find_class(self, module: str, name: str) -> NoReturn:
        raise pickle.UnpicklingError(f"sampler snapshot refers to {module}.{name}")


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    """The stored form of a sampler snapshot (JSON-able data, see ``decode_snapshot``)."""
    return pickle.dumps(snapshot, protocol=_SNAPSHOT_PROTOCOL)


def decode_snapshot(stored: bytes | str) -> dict[str, Any]:
    """A stored snapshot back: a BLOB from :func:`encode_snapshot`, or JSON text (older rows)."""
    if isinstance(stored, str):
        value = json.loads(stored)
    else:
        value = _PlainDataUnpickler(io.BytesIO(stored)).load()
    if not isinstance(value, dict):
        raise ValueError(f"sampler snapshot is a {type(value).__name__}, not a mapping")
    return value


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
        int(r[0]): SamplerState(decode_snapshot(r[1]), r[2])
        for r in db.execute("SELECT activity_id, snapshot, last_fix_unix FROM sampler_state")
    }
    return loaded


@dataclass
class Batch:
    """One group commit: changed activity rows, new points and samples, sampler states."""

    rows: list[ActivityRow] = field(default_factory=list)
    points: dict[int, list[Point]] = field(default_factory=dict)
    hr: dict[int, list[HeartRateSample]] = field(default_factory=dict)
    samplers: dict[int, tuple[bytes, float | None]] = field(default_factory=dict)  # encoded

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
            ((i, blob, last) for i, (blob, last) in batch.samplers.items()),
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
