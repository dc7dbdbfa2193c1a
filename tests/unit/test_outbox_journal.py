"""The outbox's fix journal with the recorder (issue 17): a fix that keeps no point is committed
by appending it to the journal, not by a SQLite transaction; a staging with points goes to the
database and empties the journal; a crash at any moment restores, from the committed state and
the journal, the very sampler the lost process had, with no point lost or doubled; a journal
grown to JOURNAL_MAX_RECORDS and a journal that cannot be opened both send the state to the
database instead.

Real outbox (real SQLite, real journal file) in a temp dir, the real sampler, a real recorded
track; a fake clock moved a second per fix, so every staging is a leading-edge commit started
from the staging itself (no commit task runs). A "crash" abandons an outbox without closing or
committing anything: the next one sees only what was on disk, as after a SIGKILL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import structlog

import tracker.storage.outbox as outbox_module
from tracker.engine.recorder import Recorder
from tracker.gps.filters import FixFilter
from tracker.gps.nmea import FixDecoder
from tracker.model import Fix, Point
from tracker.ride.activity import Trigger
from tracker.storage.fix_journal import JOURNAL_NAME, RECORD_SIZE, read_journal
from tracker.storage.outbox import DB_NAME, Outbox

from ..conftest import shared_file
from .test_engine_parts import Parts, new_sampler
from .test_engine_wakeups import CountingOutbox, FakeClock, recording, until

PointRow = tuple[int, float, float, float | None]


def track(count: int) -> list[Fix]:
    """The first ``count`` fixes of a real 1 Hz sailing log, as the tracker receives them (the
    same decoder and filters): most of them keep no point."""
    log = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    decoder, fix_filter = FixDecoder(), FixFilter(10.0, 90.0)
    fixes = [fix for fix in decoder.feed(log.read_bytes()) if fix_filter.accept(fix) is None]
    assert len(fixes) >= count
    return fixes[:count]


def rows(points: list[Point]) -> list[PointRow]:
    return [(p.timestamp, p.lat, p.lon, p.ele) for p in points]


class Reference:
    """An uninterrupted sampler fed the same fixes: what the interrupted one must match."""

    def __init__(self) -> None:
        self.sampler = new_sampler(None)
        self.points: list[Point] = []

    def feed(self, fix: Fix) -> None:
        self.points += self.sampler.feed(fix)


def stored_state(data: Path, local_id: int) -> tuple[bytes, float | None] | None:
    """The sampler state the database holds (its own connection: what a restart reads)."""
    with contextlib.closing(sqlite3.connect(f"file:{data / DB_NAME}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT snapshot, last_fix_unix FROM sampler_state WHERE activity_id = ?", (local_id,)
        ).fetchone()
    return None if row is None else (bytes(row[0]), row[1])


def stored_points(data: Path, local_id: int) -> list[PointRow]:
    with contextlib.closing(sqlite3.connect(f"file:{data / DB_NAME}?mode=ro", uri=True)) as db:
        return [
            (int(r[0]), float(r[1]), float(r[2]), r[3])
            for r in db.execute(
                "SELECT timestamp, lat, lon, ele FROM points WHERE activity_id = ?"
                " ORDER BY timestamp",
                (local_id,),
            )
        ]


def journal_size(data: Path) -> int:
    return (data / JOURNAL_NAME).stat().st_size


async def feed(box: Outbox, recorder: Recorder, clock: FakeClock, fix: Fix) -> str:
    """One fix a second later than the last: its staging is a leading-edge commit, started at
    once and waited for. "J" when it went to the journal, "D" when to the database."""
    clock.now += 1.0
    commits, journaled = box.commits, box.journal_commits
    recorder.on_fix(fix)
    await until(lambda: box.commits == commits + 1, "the fix's commit")
    assert box.commits == commits + 1  # one commit per staging, no more
    return "J" if box.journal_commits == journaled + 1 else "D"


@contextlib.asynccontextmanager
async def abandoned_at_exit() -> AsyncIterator[Callable[[Outbox], None]]:
    """Outboxes left as a SIGKILL leaves them (nothing committed, nothing closed) until the test
    ends; then their connection, thread and journal descriptor are let go, still without a
    commit (the kernel's part of a crash)."""
    boxes: list[Outbox] = []
    try:
        yield boxes.append
    finally:
        for box in boxes:
            await box._run(box._db.close)
            box._executor.shutdown(wait=True)
            box._journal.close()


async def restarted(data: Path, clock: FakeClock) -> tuple[Parts, CountingOutbox]:
    """A new process on the same data dir: a new outbox and recorder, and the service's resume."""
    box = CountingOutbox(data, clock)
    await box.open()
    parts = Parts(box)
    parts.recorder = Recorder(box, new_sampler, monotonic=clock, sleep=clock.sleep)
    parts.activities.recorder = parts.recorder
    current = box.current()
    assert current is not None
    replay = box.journaled_fixes(current.local_id)
    commits = box.commits
    assert parts.recorder.resume() is not None
    if replay:  # the state the replay led to goes to the database at once
        await until(lambda: box.commits == commits + 1, "the resumed state's commit")
    return parts, box


async def test_a_fix_keeping_no_point_goes_to_the_journal_and_one_with_points_to_sqlite(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    parts, box = await recording(tmp_path, clock)
    rec = parts.recorder
    local_id = box.current().local_id  # type: ignore[union-attr]
    try:
        since_state: list[Fix] = []  # the fixes the stored state does not cover
        kinds = ""
        for fix in track(120):
            before = stored_state(tmp_path, local_id)
            kept = rec.counters.points_kept
            kind = await feed(box, rec, clock, fix)
            kinds += kind
            if rec.counters.points_kept == kept:
                # No point: one record appended and synced; the database is not touched.
                assert kind == "J"
                since_state.append(fix)
                assert stored_state(tmp_path, local_id) == before
                assert read_journal(tmp_path / JOURNAL_NAME) == (
                    [(local_id, f) for f in since_state],
                    len(since_state) * RECORD_SIZE,
                )
            else:
                # Points: to the database with the state that made them, which covers every
                # journaled fix, so the journal is emptied.
                assert kind == "D"
                since_state = []
                state = stored_state(tmp_path, local_id)
                assert state is not None
                assert state[1] == fix.unix
                assert journal_size(tmp_path) == 0
        assert kinds.count("J") > 100  # the journal was the rule: most fixes keep no point
        assert box.journal_commits == kinds.count("J")
        assert stored_points(tmp_path, local_id) == rows(box.pending(local_id, 10_000)[0])
    finally:
        await box.close()
    # A clean close commits the state to the database: the journal is empty after it.
    assert journal_size(tmp_path) == 0
    state = stored_state(tmp_path, local_id)
    assert state is not None
    assert state[1] == track(120)[-1].unix


# Crashes: after the first fix (journal empty), mid-run, twice in a row one fix apart (the
# second with the first's journal already replayed and cleared), and late.
CRASH_AFTER = (1, 45, 100, 101, 160)


async def test_a_crash_restores_the_very_sampler_and_loses_or_doubles_no_point(
    tmp_path: Path,
) -> None:
    fixes = track(200)
    reference = Reference()
    clock = FakeClock()
    journal_at_crash: list[int] = []
    async with abandoned_at_exit() as abandon:
        parts, box = await recording(tmp_path, clock)
        local_id = box.current().local_id  # type: ignore[union-attr]
        for i, fix in enumerate(fixes, start=1):
            await feed(box, parts.recorder, clock, fix)
            reference.feed(fix)
            if i not in CRASH_AFTER:
                continue
            abandon(box)
            journal_at_crash.append(len(read_journal(tmp_path / JOURNAL_NAME)[0]))
            parts, box = await restarted(tmp_path, clock)
            # The state restored and fed the journal is the uninterrupted sampler's, exactly;
            # the resume committed it (and emptied the journal).
            state = box.sampler_state(local_id)
            assert state is not None
            assert state.snapshot == reference.sampler.snapshot()
            assert state.last_fix_unix == fix.unix
            assert stored_state(tmp_path, local_id) is not None
            assert journal_size(tmp_path) == 0
            # Every point so far, committed before the crash or made again by the replay: each
            # once, in order, and the counter says as many.
            assert rows(box.pending(local_id, 10_000)[0]) == rows(reference.points)
            assert stored_points(tmp_path, local_id) == rows(reference.points)
            assert box.record(local_id).points_recorded == len(reference.points)
        # The ride ends as the uninterrupted one would have: the same points, the last included.
        await parts.activities.stop(Trigger.COMMAND)
        await box.close()
    reference.points += reference.sampler.flush()
    assert stored_points(tmp_path, local_id) == rows(reference.points)
    assert len(reference.points) > 5
    # The crashes found the journal holding what they needed: all but the first (right after a
    # commit with points) and the second of the pair (one fix after a resume).
    assert journal_at_crash[0] == 0
    assert sum(1 for n in journal_at_crash if n > 0) >= 3, journal_at_crash


async def test_a_journal_at_its_bound_sends_the_state_to_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 5
    monkeypatch.setattr(outbox_module, "JOURNAL_MAX_RECORDS", bound)
    clock = FakeClock()
    reference = Reference()
    async with abandoned_at_exit() as abandon:
        parts, box = await recording(tmp_path, clock)
        rec = parts.recorder
        local_id = box.current().local_id  # type: ignore[union-attr]
        records = 0
        bound_commits = 0
        for fix in track(80):
            kept = rec.counters.points_kept
            kind = await feed(box, rec, clock, fix)
            reference.feed(fix)
            if rec.counters.points_kept == kept and records < bound:
                assert kind == "J"
                records += 1
            else:  # points, or a journal full: the state goes to the database
                assert kind == "D"
                bound_commits += rec.counters.points_kept == kept
                records = 0
                state = stored_state(tmp_path, local_id)
                assert state is not None
                assert state[1] == fix.unix
            assert journal_size(tmp_path) == records * RECORD_SIZE <= bound * RECORD_SIZE
        assert bound_commits >= 5  # the bound, not points, sent most of those to the database
        abandon(box)  # a crash: a restart replays at most `bound` fixes, and gets it right
        parts, box = await restarted(tmp_path, clock)
        try:
            state = box.sampler_state(local_id)
            assert state is not None
            assert state.snapshot == reference.sampler.snapshot()
        finally:
            await box.close()


async def test_a_journal_that_cannot_be_opened_sends_every_commit_to_sqlite(
    tmp_path: Path,
) -> None:
    (tmp_path / JOURNAL_NAME).mkdir()  # not a file: neither read nor opened for writing
    clock = FakeClock()
    reference = Reference()
    with structlog.testing.capture_logs() as logs:
        parts, box = await recording(tmp_path, clock)
        local_id = box.current().local_id  # type: ignore[union-attr]
        async with abandoned_at_exit() as abandon:
            for fix in track(60):
                assert await feed(box, parts.recorder, clock, fix) == "D"
                reference.feed(fix)
                state = stored_state(tmp_path, local_id)
                assert state is not None
                assert state[1] == fix.unix  # on disk at once
            assert box.journal_commits == 0
            abandon(box)  # a crash: everything was in the database
            parts, box = await restarted(tmp_path, clock)
            try:
                state = box.sampler_state(local_id)
                assert state is not None
                assert state.snapshot == reference.sampler.snapshot()
                assert stored_points(tmp_path, local_id) == rows(reference.points)
                assert len(reference.points) > 1
            finally:
                await box.close()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    # One line per outbox that found it unusable (two processes here), nothing else.
    assert [e["event"] for e in warnings] == ["fix journal unavailable"] * 2, warnings
    assert all(JOURNAL_NAME in str(e["reason"]) for e in warnings)


async def test_journal_records_the_stored_state_covers_are_not_fed_again(tmp_path: Path) -> None:
    """clear() is not synced: after a power cut the emptied journal may come back whole. Its
    records are then no newer than the stored state (which covers the last of them), and a
    restart must not feed a single one of them again."""
    clock = FakeClock()
    reference = Reference()
    async with abandoned_at_exit() as abandon:
        parts, box = await recording(tmp_path, clock)
        local_id = box.current().local_id  # type: ignore[union-attr]
        kinds = ""
        for fix in track(25):
            kinds += await feed(box, parts.recorder, clock, fix)
            reference.feed(fix)
        assert kinds.endswith("JJJ")
        before_clear = (tmp_path / JOURNAL_NAME).read_bytes()
        await box.commit()  # as the commit task or a clean stop would: the state to SQLite
        state = stored_state(tmp_path, local_id)
        assert state is not None
        assert state[1] == track(25)[-1].unix  # the last journaled fix
        assert journal_size(tmp_path) == 0
        abandon(box)
        (tmp_path / JOURNAL_NAME).write_bytes(before_clear)  # the truncation never reached disk
        parts, box = await restarted(tmp_path, clock)
        try:
            assert box.journaled_fixes(local_id) == []
            assert parts.recorder.counters.points_kept == 0
            restored = box.sampler_state(local_id)
            assert restored is not None
            assert restored.snapshot == reference.sampler.snapshot()
            # The next fix after the restart carries on from there, journaled after the stale
            # records or not: a later crash replays only what is newer than the stored state.
            later = track(26)[-1]
            await feed(box, parts.recorder, clock, later)
            reference.feed(later)
            abandon(box)
            parts, box = await restarted(tmp_path, clock)
            restored = box.sampler_state(local_id)
            assert restored is not None
            assert restored.snapshot == reference.sampler.snapshot()
        finally:
            await box.close()
