"""Recording: each fix through the sampler into the outbox, heart-rate samples beside them.

    fix → (stale? skip) → sampler.feed → points staged, with the sampler's snapshot function
    heart-rate sample → staged with the recording activity
    a staging → one outbox commit (points, samples and the matching snapshot), at once, or
    ``commit_interval_s`` after the last one began if that was sooner; nothing staged, no
    commit and no wake-up

Why it looks like this:

- **The state on disk matches the points on disk.** The sampler's snapshot is not taken here:
  a snapshot function is staged with the points and the outbox calls it when its commit takes
  the batch, so a crash restores a sampler that produced exactly the committed points.
- **A restart resumes.** ``resume`` restores the sampler from the disk; fixes not newer than the
  restored state (buffered in a pty while the service was down) are counted and skipped.
- **Nothing wakes without a reason.** The commit task sleeps until something is staged, then
  commits at once if the last commit began ``commit_interval_s`` ago or more, else when it is so:
  a fix waits at most that long for the disk, commits stay at most two a second, a 1 Hz fix is
  on disk in the wake-up that brought it (no second wake-up a second), and an idle tracker (no
  fix, no ride) never wakes for it.
  While the storage is failing (memory mode) one more commit is due ``outbox.retry_s`` after
  each, so the disk is tried again even when nothing new comes.
- **Whoever shows the state is told when it may have changed** (``changed``): the first fix,
  a fix after the receiver went quiet, the first point waiting for the uplink, a storage
  failure or recovery at a commit, and the stream's own receiver/fix flips.
- **GPS time is the clock.** A Pi has no RTC: the latest fix and the monotonic time it arrived
  anchor the heart-rate timestamps and the API client's token expiry.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracker.engine.waiting import first_of
from tracker.gps.stream import FixStream, GpsStatus
from tracker.logs import get_logger
from tracker.model import Fix, HeartRateSample, Point
from tracker.storage.outbox import ActivityRecord, Outbox, SamplerState

log = get_logger("engine")

COMMIT_INTERVAL_S = 0.5  # a staged fix is on disk within 0.5 s (+ the write): a crash loses < 1 s
FRESH_FIX_S = 5.0  # a fix younger than this means "the receiver has a fix" (no stream status)


class SamplerLike(Protocol):
    """What the recorder needs of ``tracker.ride.sampler.Sampler``."""

    def feed(self, fix: Fix) -> list[Point]: ...
    def flush(self) -> list[Point]: ...
    def snapshot(self) -> dict[str, Any]: ...  # JSON-able, opaque to the engine


# A fresh sampler, or one restored from a snapshot (None: fresh).
SamplerFactory = Callable[[dict[str, Any] | None], SamplerLike]


@dataclass
class EngineCounters:
    fixes: int = 0
    fixes_recorded: int = 0
    stale_fixes: int = 0
    points_kept: int = 0
    hr_samples: int = 0
    last_fix: Fix | None = None
    last_fix_mono: float | None = None


@dataclass(frozen=True)
class GpsView:
    """The receiver as the engine sees it: the stream's own status when it reports one (a real
    receiver or a replay), else what the fixes received say (a bare iterator in tests)."""

    receiver_present: bool
    has_fix: bool
    fixes: int
    last_fix: Fix | None
    stream: GpsStatus | None = None


@dataclass
class _Track:
    """The sampler of the recording activity and the time of the last fix it was fed."""

    sampler: SamplerLike
    last_fix_unix: float | None = None

    def state(self) -> SamplerState:
        return SamplerState(self.sampler.snapshot(), self.last_fix_unix)


@dataclass
class Recorder:
    """Feeds fixes to the recording activity's sampler and stages what comes out."""

    outbox: Outbox
    new_sampler: SamplerFactory
    monotonic: Callable[[], float] = time.monotonic
    commit_interval_s: float = COMMIT_INTERVAL_S
    counters: EngineCounters = field(default_factory=EngineCounters)
    # Told when an input of the device state may have changed (the LEDs look again).
    changed: Callable[[], None] = lambda: None
    # The commit task's sleep and the clock its due times are read on; they must agree with
    # each other (a fake pair in tests). ``timer`` None: ``monotonic``. The service keeps a
    # real pair even when its ``monotonic`` (the fixes' and the strap's clock) is a test's.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    timer: Callable[[], float] | None = None
    _track: _Track | None = None
    _stream: FixStream | None = None
    _stale_run: int = 0  # fixes skipped in a row as not after the last recorded one
    # When the next group commit is due (monotonic), None when nothing waits for one.
    _commit_due: float | None = None
    _last_commit_at: float = -math.inf
    _commit_wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the activity's sampler --------------------------------------------------------------

    def begin(self, state: SamplerState | None = None) -> None:
        """Record into the activity the outbox says is recording: a fresh sampler, or one
        restored from ``state``. Called before the activity is created, so that a fix arriving
        while its row is committed is recorded too."""
        sampler = self.new_sampler(state.snapshot if state else None)
        self._track = _Track(sampler, state.last_fix_unix if state else None)

    def resume(self) -> ActivityRecord | None:
        """Continue the activity the disk says is recording (after a restart or a crash)."""
        rec = self.outbox.current()
        if rec is None:
            return None
        self.begin(self.outbox.sampler_state(rec.local_id))
        track = self._track
        assert track is not None
        # The fixes journaled after the committed state, fed again: the sampler is then as the
        # lost process left it (its state is a pure function of the fixes fed), and the points
        # it had made but not committed come out again, the same ones.
        replayed = self.outbox.journaled_fixes(rec.local_id)
        points: list[Point] = []
        for fix in replayed:
            points += track.sampler.feed(fix)
            track.last_fix_unix = fix.unix
        if replayed:
            self._stage(rec.local_id, points, sampler=track.state)  # to the database
            self.counters.points_kept += len(points)
        log.info(
            "resuming the activity the disk says is recording",
            title=rec.activity.title,
            remote_id=rec.activity.remote_id,
            waiting=self.outbox.pending_count(rec.local_id),
            journaled_fixes=len(replayed),
        )
        return rec

    def finish(self, rec: ActivityRecord) -> None:
        """``rec`` ends: the sampler's last point out, staged with its final state."""
        track, self._track = self._track, None
        if track is None:
            return
        tail = track.sampler.flush()
        self._stage(rec.local_id, tail, sampler=track.state)
        self.counters.points_kept += len(tail)

    # -- fixes -------------------------------------------------------------------------------

    async def record(
        self,
        stream: AsyncIterable[Fix],
        *,
        before_each: Callable[[], Awaitable[None]] | None = None,
        before_each_due: Callable[[], bool] | None = None,
    ) -> None:
        """Every fix of ``stream`` through :meth:`on_fix` until the stream ends, ``before_each``
        awaited first (the autostart, which may start the activity this fix belongs to). A
        :class:`FixStream`'s own status is what :meth:`gps` reports from then on, and it hands
        fixes to :meth:`on_fix` straight from its source's readable callback whenever
        ``before_each`` has nothing to do (``before_each_due()`` false; with no
        ``before_each`` always): one wake-up per fix, no task step (issue 17)."""
        self._stream = stream if isinstance(stream, FixStream) else None
        if self._stream is not None:
            self._stream.on_status_change = self.changed
            if before_each is None:
                self._stream.deliver_to(self.on_fix)
            elif before_each_due is not None:
                self._stream.deliver_to(self.on_fix, lambda: not before_each_due())
        async for fix in stream:
            if before_each is not None:
                await before_each()
            self.on_fix(fix)

    def flush_pending(self) -> None:
        """A stop: the epoch the receiver is still sending (or whose line has not gone quiet
        yet) and any bytes read but not decoded go into the ride before it is finished."""
        if self._stream is not None:
            for fix in self._stream.flush_pending():
                self.on_fix(fix)

    def on_fix(self, fix: Fix) -> None:
        c = self.counters
        now = self.monotonic()
        stale = c.last_fix_mono is None or now - c.last_fix_mono >= FRESH_FIX_S
        if stale and self._stream is None:
            self.changed()  # without a stream's own status the fixes say "receiver, fix"
        c.fixes += 1
        c.last_fix = fix
        c.last_fix_mono = now
        track, rec = self._track, self.outbox.current()
        if track is None or rec is None:
            return
        if track.last_fix_unix is not None and fix.unix <= track.last_fix_unix:
            # E.g. buffered in the pty while we were down: already covered. A lone wrong fix
            # cannot cause a run of these: the filters drop an implausible time first.
            if not self._stale_run:
                log.warning(
                    "skipping fixes not after the last recorded one (already covered)",
                    fix_time=fix.time.isoformat(),
                    last_recorded_unix=track.last_fix_unix,
                )
            self._stale_run += 1
            c.stale_fixes += 1
            return
        if self._stale_run:
            log.info("recording fixes again", skipped=self._stale_run)
            self._stale_run = 0
        points = track.sampler.feed(fix)
        track.last_fix_unix = fix.unix
        c.fixes_recorded += 1
        c.points_kept += len(points)
        if points and not self.outbox.pending_count() and not self.outbox.unsaved_count():
            self.changed()  # the first point waiting for the uplink (offline LED)
        self._stage(rec.local_id, points, sampler=track.state, fixes=(fix,))

    def on_heart_rate(self, sample: HeartRateSample) -> None:
        rec = self.outbox.current()
        if rec is None:
            return
        self._stage(rec.local_id, hr=[sample])
        self.counters.hr_samples += 1

    async def record_heart_rate(self, source: AsyncIterable[HeartRateSample]) -> None:
        async for sample in source:
            self.on_heart_rate(sample)

    # -- group commits ----------------------------------------------------------------------

    def _stage(
        self,
        local_id: int,
        points: Sequence[Point] = (),
        hr: Sequence[HeartRateSample] = (),
        sampler: Callable[[], SamplerState] | None = None,
        fixes: Sequence[Fix] = (),
    ) -> None:
        self.outbox.stage(local_id, points, hr, sampler=sampler, fixes=fixes)
        # Leading edge: at once when the last commit began commit_interval_s ago or more (a
        # 1 Hz fix is on disk in the same wake-up that brought it), else when that is so.
        now = self._now()
        due = self._last_commit_at + self.commit_interval_s
        if due <= now and self.outbox.start_commit(self._started_commit_ended):
            self._last_commit_at = now  # started right here, no task woken for it
            return
        self.commit_within(max(0.0, due - now))

    def _started_commit_ended(self) -> None:
        """A commit started from a staging ended; when the storage failed, as the commit
        task does after its own: the LED says so and the disk is tried again later."""
        if self.outbox.storage_error is not None:
            self.changed()
            self.commit_within(self.outbox.retry_s)

    def _now(self) -> float:
        return (self.timer or self.monotonic)()

    def commit_within(self, seconds: float) -> None:
        """Make sure a group commit happens at most ``seconds`` from now (staging calls this
        with what is left of ``commit_interval_s`` since the last commit began, often 0; it
        only ever brings the due time forward)."""
        due = self._now() + seconds
        if self._commit_due is None or due < self._commit_due:
            self._commit_due = due
            self._commit_wake.set()

    async def commit_forever(self) -> None:
        """Group commits: one transaction when due (see ``_stage``); asleep while nothing is
        staged."""
        while True:
            self._commit_wake.clear()
            due = self._commit_due
            if due is None:
                await self._commit_wake.wait()
                continue
            delay = due - self._now()
            if delay > 0:
                if delay <= self.commit_interval_s:
                    await self.sleep(delay)  # nothing can be due sooner than a staging's commit
                else:
                    # A disk retry: a staging may bring it forward.
                    await first_of(self.sleep(delay), self._commit_wake.wait())
                continue  # look again: the due time may have come forward meanwhile
            # Staged from here on is either taken by this commit or due again in full.
            self._commit_due = None
            self._last_commit_at = self._now()
            if self.outbox.start_commit(self._started_commit_ended):
                continue  # started (the journal, or a write whose outcome comes by itself)
            failing = self.outbox.storage_error
            try:
                await self.outbox.commit()
            except Exception:
                self.commit_within(0.0)  # the supervisor's pause, then this again
                raise
            if self.outbox.storage_error != failing:
                self.changed()  # the storage failed or came back: the LED says so
            if self.outbox.storage_error is not None:
                self.commit_within(self.outbox.retry_s)  # memory mode: try the disk again

    # -- what the fixes say ------------------------------------------------------------------

    def gps_anchor(self) -> tuple[float, float] | None:
        """(GPS unix time of the latest fix, monotonic time it arrived): the HR clock anchor."""
        c = self.counters
        if c.last_fix is None or c.last_fix_mono is None:
            return None
        return (c.last_fix.unix, c.last_fix_mono)

    def gps_now(self) -> float | None:
        """GPS time now (the latest fix moved on by the monotonic clock), None before a fix."""
        anchor = self.gps_anchor()
        return None if anchor is None else anchor[0] + (self.monotonic() - anchor[1])

    def gps_changes_in(self) -> float | None:
        """Seconds until the fixes' own "has fix" turns false by itself (no fix for
        ``FRESH_FIX_S``), when that is what :meth:`gps` reports; None when nothing expires."""
        c = self.counters
        if self._stream is not None or c.last_fix_mono is None:
            return None
        left = c.last_fix_mono + FRESH_FIX_S - self.monotonic()
        return left if left > 0 else None

    def gps(self) -> GpsView:
        c = self.counters
        stream = self._stream.status() if self._stream is not None else None
        fresh = c.last_fix_mono is not None and self.monotonic() - c.last_fix_mono < FRESH_FIX_S
        if stream is not None:
            present, has_fix = stream.receiver_present, stream.has_fix
        else:
            present, has_fix = fresh or c.fixes > 0, fresh
        return GpsView(present, has_fix, c.fixes, c.last_fix, stream)
