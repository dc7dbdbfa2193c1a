"""The durable outbox: every accepted point waits here, on disk, until the server confirmed it.

SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``, driven from one worker thread
so the event loop never waits for a transaction (only for the fix journal's one small record).
Why this shape:

- **Group commits.** The engine stages points, heart-rate samples and the sampler's state as they
  come and starts a commit at least once a second (:meth:`Outbox.start_commit`; an awaited
  :meth:`Outbox.commit` for starts, stops and confirmations): one transaction, one fsync, for
  everything of that second. A SIGKILL or a power cut loses at most that last second, and what
  is on disk is always consistent: the points and the sampler state that produced them commit
  together, so a restarted sampler continues exactly where the committed points end.
- **The fix journal.** When only the sampler's new state waits (most fixes keep no point), the
  commit is the fixes fed since the state was last taken, appended to ``fix_journal`` with one
  ``fdatasync`` in the event loop, and no transaction; a restart feeds them to the restored
  sampler (:meth:`Outbox.journaled_fixes`). The next transaction stores a state covering them
  and the journal starts over.
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
- **Private.** The data dir is 0700, the database and its ``-wal``/``-shm`` 0600 (``files``).

This module is the staging and the commit protocol; ``memory_mode`` decides when the disk is
tried again, and the SQLite side is ``db`` (with ``schema``, ``rows`` and ``pruning``), run in
one worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import operator
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tracker.logs import get_logger
from tracker.model import Fix, HeartRateSample, Point
from tracker.ride.activity import FINISHED, Activity, ActivityState
from tracker.storage.db import Database
from tracker.storage.failures import describe
from tracker.storage.fix_journal import JOURNAL_NAME, FixJournal, read_journal
from tracker.storage.memory_mode import MemoryMode
from tracker.storage.queues import ActivityQueue
from tracker.storage.records import ActivityRecord, SamplerState, activity_with
from tracker.storage.rows import Batch, Loaded, activity_row, encode_snapshot
from tracker.storage.schema import DB_NAME

# The outbox's vocabulary, importable from here: what it hands out and what it takes.
__all__ = ["DB_NAME", "ActivityRecord", "Outbox", "SamplerState", "activity_with"]

log = get_logger("outbox")
# A journal this long goes to the database with the next commit (a restart replays it all).
JOURNAL_MAX_RECORDS = 600
T = TypeVar("T")


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db = Database(self.path, self.max_bytes)
        self._records: dict[int, ActivityRecord] = {}
        self._queues: dict[int, ActivityQueue] = {}
        self._sampler: dict[int, SamplerState] = {}
        self._sampler_dirty: set[int] = set()
        self._memory = MemoryMode(self.path, retry_s, monotonic)
        self.commits = 0  # group commits: database transactions and journal appends
        self.journal_commits = 0
        self._lock = asyncio.Lock()
        self._in_flight: Batch | None = None  # the batch a commit is writing right now
        # Resolved when a commit started by start_commit() has had its outcome taken.
        self._started: asyncio.Future[None] | None = None
        # Sampler snapshots staged with their points, evaluated when the next commit takes them.
        self._sampler_source: dict[int, Callable[[], SamplerState]] = {}
        # The fixes fed to a sampler since its state was last taken, while nothing else waits
        # for the database: a group commit appends them to the journal instead (fix_journal).
        self._journal = FixJournal(Path(data_dir) / JOURNAL_NAME)
        self._journal_staged: list[tuple[int, Fix]] = []
        self._journaled: list[tuple[int, Fix]] = []  # what the journal held at open (resume)
        self._journal_ids: set[int] = set()  # activities whose state the journal extends
        self._state_needs_database = False  # a sampler state staged without its fixes
        # Called when a commit made points or heart-rate samples sendable (the uplink's cue).
        self.on_sendable: Callable[[], None] = lambda: None

    @property
    def storage_error(self) -> str | None:
        """Why the outbox runs from memory (status, LED); None while it writes to disk."""
        return self._memory.error

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Open or create the database and load every open activity with its pending points."""
        try:
            loaded = await self._run(self._db.open)
        except (sqlite3.Error, OSError) as exc:
            self._memory.enter(exc, during="open")
            loaded = Loaded()
            if not self._memory.corrupt:  # read what we can so stored points are still sent
                loaded, corrupt = await self._run(self._db.salvage_read_only)
                self._memory.corrupt = self._memory.corrupt or corrupt
        self._records = {r.local_id: r for r in loaded.records}
        self._queues = ActivityQueue.from_disk(loaded)
        self._sampler = loaded.samplers
        await self._open_journal()

    async def _open_journal(self) -> None:
        """Read the journal for the restart's replay, and open it for appending unless the
        database failed (then nothing is durable: it is only read)."""
        try:
            if self.storage_error is None:
                self._journaled = await self._run(self._journal.open)
            else:
                self._journaled = read_journal(self._journal.path)[0]
        except OSError as exc:  # every group commit goes to the database then
            log.warning("fix journal unavailable", reason=describe(exc, self._journal.path))
        current = self.current()
        if current is not None and self.journaled_fixes(current.local_id):
            self._journal_ids.add(current.local_id)  # (older records: covered, or nobody's)

    async def close(self) -> None:
        """Commit what is staged and close the database (SIGTERM path)."""
        with contextlib.suppress(Exception):
            await self.commit()
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)
        self._journal.close()

    # ------------------------------------------------------------------ activities

    def activities(self) -> list[ActivityRecord]:
        return sorted(self._records.values(), key=lambda r: r.local_id)

    def record(self, local_id: int) -> ActivityRecord:
        return self._records[local_id]

    def current(self) -> ActivityRecord | None:
        """The activity that is recording, if any (at most one). Asked for every fix: no sorting
        (the records are kept in local-id order as they are created)."""
        for rec in self._records.values():
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
        self._queues[local_id] = ActivityQueue()
        await self.commit()
        return rec

    async def update_activity(self, activity: Activity) -> None:
        """Persist a new state / remote id / upload_only flag at once (its own transaction)."""
        rec = self._records[activity.local_id]
        if activity.state in FINISHED and rec.finished_at is None:
            rec.finished_at = self._wall()
        rec.activity = activity
        self._queues[activity.local_id].dirty = True
        await self.commit()

    def count_request(self, local_id: int, nbytes: int, *, ok: bool) -> None:
        rec = self._records[local_id]
        rec.requests += 1
        rec.bytes_sent += nbytes
        if ok:
            rec.last_upload_at = self._wall()
        self._queues[local_id].dirty = True

    # ------------------------------------------------------------------ points

    def stage(
        self,
        local_id: int,
        points: Sequence[Point] = (),
        hr: Sequence[HeartRateSample] = (),
        sampler: Callable[[], SamplerState] | None = None,
        fixes: Sequence[Fix] = (),
    ) -> None:
        """Queue points/samples for the next group commit, and ``sampler``: a snapshot function of
        the sampler that made the points, called when that commit takes its batch (in the same
        loop turn as the points, so the state on disk matches exactly the points committed,
        whatever was fed between this call and the commit). ``fixes``: the fixes fed to that
        sampler since the last staging; when nothing else waits for the database, the next
        :meth:`start_commit` journals them instead of committing the state (``fix_journal``).
        A state staged without its fixes goes to the database."""
        if sampler is not None:
            if fixes:
                for fix in fixes:
                    self._journal_staged.append((local_id, fix))
            else:
                self._state_needs_database = True
        rec, queue = self._records[local_id], self._queues[local_id]
        if points:
            queue.staged.extend(points)
            rec.points_recorded += len(points)
            queue.dirty = True
        if hr:
            queue.staged_hr.extend(hr)
        if sampler is not None:
            self._sampler_source[local_id] = sampler
            self._sampler_dirty.add(local_id)

    def sampler_state(self, local_id: int) -> SamplerState | None:
        return self._sampler.get(local_id)

    def journaled_fixes(self, local_id: int) -> list[Fix]:
        """The fixes the journal held at :meth:`open` for this activity that its committed
        sampler state does not cover: what a restart feeds the restored sampler, in order."""
        state = self._sampler.get(local_id)
        after = state.last_fix_unix if state is not None else None
        return [
            fix
            for owner, fix in self._journaled
            if owner == local_id and (after is None or fix.unix > after)
        ]

    def pending(self, local_id: int, limit: int) -> tuple[list[Point], list[HeartRateSample]]:
        """The oldest ``limit`` unsent points, and the unsent HR samples up to the last of them.

        With no point waiting, HR samples alone are offered (a strap may outlive the fix).
        """
        return self._queues[local_id].oldest(limit)

    def pending_count(self, local_id: int | None = None) -> int:
        """Sendable points not confirmed yet (of one activity, or of all)."""
        queues = self._queues.values() if local_id is None else [self._queues[local_id]]
        return sum(len(q.pending) for q in queues)

    def pending_hr(self, local_id: int) -> list[HeartRateSample]:
        """Every sendable heart-rate sample of an activity not confirmed yet, oldest first."""
        return list(self._queues[local_id].pending_hr)

    def pending_hr_count(self, local_id: int) -> int:
        return len(self._queues[local_id].pending_hr)

    def waiting_count(self, local_id: int) -> int:
        """Points of an activity not confirmed yet: sendable plus staged for the next commit
        (in memory mode a point held for the next disk attempt counts in both)."""
        queue = self._queues[local_id]
        return len(queue.pending) + len(queue.staged)

    def all_sent(self, local_id: int) -> bool:
        """No point of this activity waits, neither committed nor still staged for the next
        commit (a stop must not overtake the sampler's last points on their way to disk)."""
        return not self._queues[local_id].pending and self.settled(local_id)

    def settled(self, local_id: int) -> bool:
        """Every staged point of this activity is already sendable (committed, or held in
        memory because the disk failed): nothing is on its way to the pending list."""
        rec = self._records[local_id]
        flight = self._in_flight
        if flight is not None and (flight.points.get(local_id) or flight.hr.get(local_id)):
            return False  # taken off the stage by a commit that is still writing them
        return self._queues[local_id].settled(rec.sent_upto, rec.hr_sent_upto)

    def unsaved_count(self) -> int:
        return sum(len(q.staged) for q in self._queues.values())

    async def confirm(
        self, local_id: int, points: Sequence[Point], hr: Sequence[HeartRateSample]
    ) -> None:
        """The server confirmed these (the oldest pending ones): move the watermarks, durably."""
        rec = self._records[local_id]
        if points:
            rec.sent_upto = max(rec.sent_upto, points[-1].timestamp)
        if hr:
            rec.hr_sent_upto = max(rec.hr_sent_upto, hr[-1].timestamp)
        queue = self._queues[local_id]
        queue.drop_sent(rec.sent_upto, rec.hr_sent_upto)
        queue.dirty = True
        await self.commit()

    async def all_points(self, local_id: int) -> list[Point]:
        """Every point of an activity (sent or not), oldest first: for GPX export and upload."""
        queue = self._queues.get(local_id)
        in_memory = (queue.pending + queue.staged) if queue else []
        return _by_time(await self._stored(lambda: self._db.points(local_id)), in_memory)

    async def all_heart_rate(self, local_id: int) -> list[HeartRateSample]:
        """Every heart-rate sample of an activity (sent or not), oldest first: for the GPX."""
        queue = self._queues.get(local_id)
        in_memory = (queue.pending_hr + queue.staged_hr) if queue else []
        return _by_time(await self._stored(lambda: self._db.heart_rate(local_id)), in_memory)

    async def _stored(self, read: Callable[[], list[Stamped]]) -> list[Stamped]:
        """What the database holds (nothing when it cannot be read: memory mode)."""
        if self._db.is_open:
            with contextlib.suppress(sqlite3.Error, OSError):
                return await self._run(read)
        return []

    # ------------------------------------------------------------------ commit

    async def commit(self) -> None:
        """One transaction for everything staged (points, HR, sampler state, changed rows)."""
        async with self._lock:
            if self._started is not None:  # one write at a time: the started one ends first
                await asyncio.shield(self._started)
            batch = self._take_batch()
            if not batch.has_work():
                return
            if self.storage_error is not None and not self._memory.may_retry_disk():
                self._keep_in_memory(batch, durable=False)
                return
            self._in_flight = batch
            # Once a batch is off the stage it must reach the disk (or the memory copy) even if
            # this commit is cancelled mid-write, as a clean shutdown cancels the commit task:
            # the write's own done-callback takes its outcome, and a cancellation waits for it
            # before going on. (A callback, not a task around the write: the same guarantee with
            # two hops fewer through the loop per commit, issue 17.)
            write = self._write_batch(batch)
            try:
                await asyncio.shield(write)
            except (sqlite3.Error, OSError):
                pass  # taken by _written: the batch stays in memory and is tried again
            except asyncio.CancelledError:
                with contextlib.suppress(asyncio.CancelledError, sqlite3.Error, OSError):
                    await asyncio.shield(write)
                raise

    def start_commit(self, on_done: Callable[[], None] = lambda: None) -> bool:
        """Start the commit of what is staged without waiting for it (the recorder's group
        commit, from the staging's own loop turn): the write runs in the worker thread, and its
        outcome is taken in the loop by one callback when it ends (``on_done`` after it), with
        no task, shield or future chain around it (issue 17: each of those was a loop turn per
        commit). False, and nothing taken, when a commit is under way already or the storage
        is failing: the caller leaves it to an awaited :meth:`commit`."""
        if self._lock.locked() or self._started is not None or self.storage_error is not None:
            return False
        if self._journal_may_take():
            try:
                self._append_journal()
            except OSError as exc:
                log.warning("fix journal failed; the sampler state goes to the database again",
                            reason=describe(exc, self._journal.path))  # fmt: skip
                self._journal.close()
            else:
                on_done()
                return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # staged outside the loop (a test's synchronous feed)
            return False
        batch = self._take_batch()
        if not batch.has_work():
            return True
        self._in_flight = batch
        started = self._started = loop.create_future()

        def written_in_loop(write: Future[None]) -> None:
            self._started = None
            self._take_outcome(batch, write)
            started.set_result(None)
            on_done()

        def written(write: Future[None]) -> None:  # in the worker thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process ends
                loop.call_soon_threadsafe(written_in_loop, write)

        self._executor.submit(self._db.write, batch).add_done_callback(written)
        return True

    def _journal_may_take(self) -> bool:
        """Only fixes and the sampler state they lead to wait, and the journal is open and
        short enough (a restart replays it): they go to the journal, not the database."""
        staged = self._journal_staged
        if not staged or self._state_needs_database or not self._journal.is_open:
            return False
        if self._journal.records + len(staged) > JOURNAL_MAX_RECORDS:
            return False
        for queue in self._queues.values():
            if queue.staged or queue.staged_hr or queue.dirty:
                return False
        return True

    def _append_journal(self) -> None:
        """The staged fixes on disk (one ``fdatasync``), each run of one activity's together."""
        staged, self._journal_staged = self._journal_staged, []
        try:
            for local_id, run in itertools.groupby(staged, key=operator.itemgetter(0)):
                self._journal.append(local_id, [fix for _, fix in run])
                self._journal_ids.add(local_id)
        except OSError:
            self._state_needs_database = True  # the state goes to the database with its fixes
            raise
        self.commits += 1
        self.journal_commits += 1

    def _take_outcome(self, batch: Batch, write: Future[None]) -> None:
        """A started commit's write ended: as an awaited one's (:meth:`_written`), and an
        unexpected error said here, as no caller awaits it."""
        self._written(batch, write)
        exc = write.exception()
        if exc is not None and not isinstance(exc, (sqlite3.Error, OSError)):
            log.error("group commit failed", error=f"{type(exc).__name__}: {exc}")

    def _write_batch(self, batch: Batch) -> asyncio.Future[None]:
        """Start writing ``batch`` (in the worker thread); its outcome is taken in the loop by
        the returned future's first done-callback, before anyone awaiting it resumes."""
        loop = asyncio.get_running_loop()
        write = loop.run_in_executor(self._executor, self._db.write, batch)
        write.add_done_callback(functools.partial(self._written, batch))
        return write

    def _written(self, batch: Batch, write: asyncio.Future[None] | Future[None]) -> None:
        self._in_flight = None
        exc = None if write.cancelled() else write.exception()
        if isinstance(exc, (sqlite3.Error, OSError)):
            self._memory.write_failed(exc)
            self._keep_in_memory(batch, durable=False)
        elif exc is None and not write.cancelled():
            self._memory.write_succeeded()
            self.commits += 1
            self._keep_in_memory(batch, durable=True)
            if self._journal_ids <= batch.samplers.keys():
                # No fix was journaled during this write (start_commit waits for it), so the
                # states it stored cover every record: the journal starts over.
                with contextlib.suppress(OSError):
                    self._journal.clear()
                self._journal_ids = set()
        # (any other exception reaches the commit's caller through the awaited future)

    def _take_batch(self) -> Batch:
        for local_id, snapshot in self._sampler_source.items():
            self._sampler[local_id] = snapshot()
        self._sampler_source.clear()
        self._journal_staged = []  # the states taken now cover these fixes
        self._state_needs_database = False
        batch = Batch()
        for rec in self._records.values():
            queue = self._queues[rec.local_id]
            if queue.staged or queue.staged_hr or queue.dirty:
                batch.rows.append(activity_row(rec))
                batch.points[rec.local_id] = queue.staged
                batch.hr[rec.local_id] = queue.staged_hr
                queue.staged, queue.staged_hr, queue.dirty = [], [], False
        for local_id in self._sampler_dirty:
            # Serialised here, in the loop, in the same turn as the points are taken: the live
            # sampler may share structures with its snapshot and keeps changing meanwhile.
            state = self._sampler[local_id]
            batch.samplers[local_id] = (encode_snapshot(state.snapshot), state.last_fix_unix)
        self._sampler_dirty = set()
        return batch

    def _keep_in_memory(self, batch: Batch, *, durable: bool) -> None:
        """After a commit: points become sendable. After a failed one, they stay queued for the
        next disk attempt *and* become sendable (memory mode: nothing is durable anyway)."""
        sendable = False
        for local_id, points in batch.points.items():
            rec = self._records[local_id]
            self._queues[local_id].keep(
                points, batch.hr[local_id], (rec.sent_upto, rec.hr_sent_upto), durable=durable
            )
            sendable = sendable or bool(points) or bool(batch.hr[local_id])
        if sendable:
            self.on_sendable()
        if not durable:
            self._sampler_dirty.update(batch.samplers)

    # ------------------------------------------------------------------ pruning

    async def prune(self) -> int:
        """Drop finished activities older than keep_days, and oldest finished ones while the file
        is near its bound. Returns how many activities were removed."""
        if not self._db.is_open or self.storage_error is not None:
            return 0
        cutoff = self._wall() - self.keep_days * 86400
        finished = [
            r
            for r in self.activities()
            if r.activity.state in FINISHED
            and r.finished_at is not None
            and not self._queues[r.local_id].pending
        ]
        old = [r.local_id for r in finished if r.finished_at is not None and r.finished_at < cutoff]
        try:
            removed = await self._run(lambda: self._db.prune(old, [r.local_id for r in finished]))
        except (sqlite3.Error, OSError) as exc:
            log.warning("pruning failed", reason=describe(exc, self.path))
            return 0
        for local_id in removed:
            self._records.pop(local_id, None)
            self._queues.pop(local_id, None)
            self._sampler.pop(local_id, None)
        if removed:
            log.info("pruned finished activities", count=len(removed))
        return len(removed)

    def used_bytes(self) -> int | None:
        """Bytes used in the database file (status); None in memory mode."""
        return self._db.used_bytes()

    # ------------------------------------------------------------------ thread side

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)


Stamped = TypeVar("Stamped", Point, HeartRateSample)


def _by_time(stored: list[Stamped], in_memory: Sequence[Stamped]) -> list[Stamped]:
    """One item per second, oldest first: the stored one where both have it."""
    by_ts = {item.timestamp: item for item in stored}
    for item in in_memory:
        by_ts.setdefault(item.timestamp, item)
    return [by_ts[t] for t in sorted(by_ts)]
