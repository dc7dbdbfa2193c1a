"""The outbox on a real SQLite file: group commits, exact resume, watermarks, failing storage."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tracker.model import HeartRateSample, Point
from tracker.ride.activity import ActivityState
from tracker.storage.outbox import DB_NAME, Outbox, SamplerState, activity_with

from ..integration.test_outbox_store_support import db_modes, mode, read_only, small_tmpfs, umask


def pts(start: int, n: int) -> list[Point]:
    return [
        Point(t, 45.0 + t * 1e-4, 7.0 + t * 1e-4, float(t % 1000)) for t in range(start, start + n)
    ]


async def fill(box: Outbox, local_id: int, chunk: int, limit: int) -> int:
    """Commit points ``chunk`` at a time until the storage fails or ``limit`` points are in;
    how many points were staged."""
    t = 0
    while box.storage_error is None and t < limit:
        box.stage(local_id, pts(t, chunk))
        t += chunk
        await box.commit()
    return t


async def reopen(path: Path, **kw: float) -> Outbox:
    box = Outbox(path, **kw)
    await box.open()
    return box


async def test_points_and_sampler_state_commit_together_and_resume_exactly(tmp_path: Path) -> None:
    box = await reopen(tmp_path)
    rec = await box.create_activity("Ride 1")
    box.stage(
        rec.local_id,
        pts(100, 3),
        [HeartRateSample(100, 120)],
        lambda: SamplerState({"k": [1, 2]}, 102.5),
    )
    box.stage(rec.local_id, pts(103, 2), sampler=lambda: SamplerState({"k": [3]}, 104.0))
    assert box.pending(rec.local_id, 10) == ([], [])  # staged is not durable yet: not sendable
    commits = box.commits
    await box.commit()
    assert box.commits == commits + 1  # one transaction for the whole group
    assert box.pending(rec.local_id, 10)[0] == pts(100, 5)
    box.stage(rec.local_id, pts(105, 1))  # never committed: a SIGKILL would lose it
    await box._run(box._db.close)  # no final commit, like a crash
    box._executor.shutdown()

    again = await reopen(tmp_path)
    (back,) = again.activities()
    assert back.activity.title == "Ride 1"
    assert back.activity.state is ActivityState.RECORDING
    assert again.pending(back.local_id, 10) == (pts(100, 5), [HeartRateSample(100, 120)])
    assert again.sampler_state(back.local_id) == SamplerState({"k": [3]}, 104.0)
    await again.close()


async def test_confirm_moves_the_watermark_durably(tmp_path: Path) -> None:
    box = await reopen(tmp_path)
    rec = await box.create_activity("A")
    box.stage(rec.local_id, pts(0, 10), [HeartRateSample(t, 100 + t) for t in range(10)])
    await box.commit()
    batch, hr = box.pending(rec.local_id, 4)
    assert [p.timestamp for p in batch] == [0, 1, 2, 3]
    assert [s.timestamp for s in hr] == [0, 1, 2, 3]  # HR goes with the points of its seconds
    await box.confirm(rec.local_id, batch, hr)
    assert box.pending_count(rec.local_id) == 6
    await box.close()
    again = await reopen(tmp_path)
    (back,) = again.activities()
    points, hr = again.pending(back.local_id, 10)
    assert [p.timestamp for p in points] == list(range(4, 10))
    assert [s.timestamp for s in hr] == list(range(4, 10))
    assert [p.timestamp for p in await again.all_points(back.local_id)] == list(range(10))
    await again.close()


async def test_titles_are_unique_and_persisted_before_use(tmp_path: Path) -> None:
    box = await reopen(tmp_path)
    rec = await box.create_activity("Same")
    with pytest.raises(ValueError, match="already used"):
        await box.create_activity("Same")
    await box.update_activity(activity_with(rec, remote_id=77, state=ActivityState.STOPPING))
    # Read the file with a second, independent connection: it is on disk already.
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db:
        row = db.execute("SELECT title, remote_id, state FROM activities").fetchone()
    assert row == ("Same", 77, "stopping")
    mode = sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    await box.close()


async def test_storage_bound_full_keeps_running_from_memory_and_loses_nothing(
    tmp_path: Path,
) -> None:
    clock = [0.0]
    box = Outbox(tmp_path, max_mb=0.3, retry_s=30, monotonic=lambda: clock[0])
    await box.open()
    rec = await box.create_activity("Long ride")
    t = await fill(box, rec.local_id, 500, 200_000)
    assert box.storage_error is not None
    assert "no space left" in box.storage_error
    # Everything recorded is still offered to the uplink, from memory.
    assert box.pending_count(rec.local_id) == t
    box.stage(rec.local_id, pts(t, 5))
    await box.commit()  # before retry_s: stays in memory without touching the disk
    assert box.pending_count(rec.local_id) == t + 5
    # The uplink sends most of it; the confirmations free room, the retry writes the rest.
    sent, _ = box.pending(rec.local_id, t - 600)
    await box.confirm(rec.local_id, sent, [])
    await box.close()
    # What reached the disk before it filled is intact and readable.
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db:
        stored = db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    assert 0 < stored <= t


async def test_real_full_disk_on_a_small_tmpfs(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "tiny", "256k") as tiny:
        box = Outbox(tiny, max_mb=50)
        await box.open()
        rec = await box.create_activity("Tiny disk")
        t = await fill(box, rec.local_id, 300, 100_000)
        assert box.storage_error is not None
        assert "no space left" in box.storage_error
        assert box.pending_count(rec.local_id) == t
        await box.close()
        with contextlib.closing(sqlite3.connect(tiny / DB_NAME)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT COUNT(*) FROM points").fetchone()[0] > 0


async def test_read_only_data_dir_salvages_stored_points(tmp_path: Path) -> None:
    data = tmp_path / "data"
    box = await reopen(data)
    rec = await box.create_activity("Before")
    box.stage(rec.local_id, pts(0, 7))
    await box.commit()
    await box.close()
    with read_only(data):
        ro = Outbox(data)
        await ro.open()
        assert ro.storage_error is not None
        assert "read-only" in ro.storage_error or "cannot" in ro.storage_error
        (back,) = ro.activities()
        assert ro.pending(back.local_id, 10)[0] == pts(0, 7)  # still sendable
        back.activity = activity_with(back)
        ro.stage(back.local_id, pts(7, 3))
        await ro.commit()
        assert ro.pending_count() == 10
        await ro.close()


async def test_corrupt_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    garbage = b"this is not an sqlite database at all " * 200
    (tmp_path / DB_NAME).write_bytes(garbage)
    box = Outbox(tmp_path)
    await box.open()
    assert box.storage_error is not None
    assert "corrupt" in box.storage_error
    assert "move it aside" in box.storage_error
    rec = await box.create_activity("From memory")
    box.stage(rec.local_id, pts(0, 3))
    await box.commit()
    assert box.pending_count(rec.local_id) == 3
    await box.close()
    assert (tmp_path / DB_NAME).read_bytes() == garbage  # never overwritten


async def test_prune_drops_old_finished_activities_only(tmp_path: Path) -> None:
    now = [1_000_000.0]
    box = Outbox(tmp_path, keep_days=1, wall_clock=lambda: now[0])
    await box.open()
    old = await box.create_activity("old")
    box.stage(old.local_id, pts(0, 5))
    await box.commit()
    await box.confirm(old.local_id, pts(0, 5), [])
    await box.update_activity(activity_with(old, state=ActivityState.STOPPED))
    unsent = await box.create_activity("unsent")
    box.stage(unsent.local_id, pts(0, 5))
    await box.update_activity(activity_with(unsent, state=ActivityState.STOPPED))
    now[0] += 2 * 86400
    assert await box.prune() == 1
    assert [r.activity.title for r in box.activities()] == ["unsent"]  # waiting points stay
    await box.close()
    again = await reopen(tmp_path)
    assert [r.activity.title for r in again.activities()] == ["unsent"]
    await again.close()


async def test_a_commit_cancelled_mid_write_still_lands_its_batch(tmp_path: Path) -> None:
    """A clean shutdown cancels the commit task; the batch it had taken must still reach disk.

    The outbox thread is held busy (a slow fsync, say) so the write is queued when the cancel
    comes; the cancelled commit waits for its write instead of dropping the batch.
    """
    import asyncio
    import threading

    box = Outbox(tmp_path)
    await box.open()
    rec = await box.create_activity("cancelled mid-write")
    box.stage(rec.local_id, [Point(1_760_000_000, 45.0, 7.0, 1.0)],
              [HeartRateSample(1_760_000_000, 120)])
    gate = threading.Event()
    box._executor.submit(gate.wait)  # the outbox thread is busy
    commit = asyncio.create_task(box.commit())
    for _ in range(5):
        await asyncio.sleep(0)  # it took the batch and queued the write
    commit.cancel()
    await asyncio.sleep(0)
    gate.set()  # the slow fsync ends
    with pytest.raises(asyncio.CancelledError):
        await commit
    await box.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert db.execute("SELECT count(*) FROM points").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM heart_rate").fetchone()[0] == 1
    finally:
        db.close()


@pytest.mark.parametrize("mask", [0o022, 0o000])
async def test_a_new_outbox_is_private_under_any_umask(tmp_path: Path, mask: int) -> None:
    data = tmp_path / "home" / "data"  # nothing exists yet: the outbox creates it all
    with umask(mask):
        box = Outbox(data)
        await box.open()
        rec = await box.create_activity("Private")
        box.stage(rec.local_id, pts(0, 5), [HeartRateSample(0, 100)])
        await box.commit()
        # Open and written: the WAL and the shared-memory file exist now.
        assert db_modes(data / DB_NAME) == {
            DB_NAME: 0o600,
            f"{DB_NAME}-wal": 0o600,
            f"{DB_NAME}-shm": 0o600,
        }
        assert mode(data) == 0o700
        await box.close()
    assert mode(data / DB_NAME) == 0o600


async def test_an_outbox_left_readable_is_made_private_and_said_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    box = await reopen(data)
    rec = await box.create_activity("From an older version")
    box.stage(rec.local_id, pts(0, 3))
    await box.commit()
    # Still open, as a crashed or older service leaves it: the -wal and -shm exist.
    assert len(db_modes(data / DB_NAME)) == 3
    data.chmod(0o755)
    for name in db_modes(data / DB_NAME):
        (data / name).chmod(0o644)
    with capture_logs() as logs:
        again = await reopen(data)
        assert again.storage_error is None
        assert again.pending(rec.local_id, 10)[0] == pts(0, 3)  # nothing lost
        assert set(db_modes(data / DB_NAME).values()) == {0o600}
        await again.close()
        await box.close()
        third = await reopen(data)  # already private: nothing to say
        await third.close()
    assert mode(data) == 0o700
    assert set(db_modes(data / DB_NAME).values()) == {0o600}
    said = [e for e in logs if "readable by other users" in e["event"]]
    assert sorted(e["path"] for e in said) == sorted(
        str(p) for p in (data, data / DB_NAME, data / f"{DB_NAME}-wal", data / f"{DB_NAME}-shm")
    )
    assert {(e["was"], e["now"]) for e in said} == {("0o755", "0o700"), ("0o644", "0o600")}


async def test_tightening_never_widens_and_leaves_a_shared_dir_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: chmod-ing it would break other users
    (shared / DB_NAME).touch()
    (shared / DB_NAME).chmod(0o444)  # a read-only database stays read-only
    with capture_logs() as logs:
        box = Outbox(shared)
        await box.open()
        await box.close()
    assert mode(shared) == 0o1777
    assert mode(shared / DB_NAME) == 0o400
    assert any("shared with other users" in e["event"] for e in logs)


async def test_a_snapshot_stored_as_json_by_an_earlier_version_still_resumes(
    tmp_path: Path,
) -> None:
    box = await reopen(tmp_path)
    rec = await box.create_activity("Ride 1")
    box.stage(rec.local_id, pts(100, 1), sampler=lambda: SamplerState({"k": [1.5]}, 100.0))
    await box.close()
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as db, db:
        db.execute("UPDATE sampler_state SET snapshot = ?", ('{"k":[0.1,2],"v":null}',))
    again = await reopen(tmp_path)
    assert again.sampler_state(rec.local_id) == SamplerState({"k": [0.1, 2], "v": None}, 100.0)
    await again.close()


def test_a_stored_snapshot_reads_back_as_its_json_round_trip_would() -> None:
    """The binary form gives restore exactly what the JSON text gave (types and every float bit),
    here for a real sampler mid-ride; and it never builds anything but plain data."""
    import json
    import pickle

    from tracker.ride.sampler import Sampler
    from tracker.storage.rows import decode_snapshot, encode_snapshot

    from .test_sampler_core import fix

    sampler = Sampler(10.0, 60)
    for t in range(400):
        sampler.feed(fix(t / 5, 1.3 * t + 9 * math.sin(t / 7), 11 * math.cos(t / 13)))
    snap = sampler.snapshot()
    back = decode_snapshot(encode_snapshot(snap))
    assert back == json.loads(json.dumps(snap))
    assert repr(back) == repr(json.loads(json.dumps(snap)))  # list not tuple, float bits alike
    with pytest.raises(pickle.UnpicklingError):
        decode_snapshot(pickle.dumps({"k": Path("/")}))
