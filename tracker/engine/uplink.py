"""The uplink: moves points from the outbox to Map My Tracks, in batches, never giving up.

Rules it keeps (and why):

- **Batches, not points.** While recording it sends what waits every ``batch_interval_s``; the
  first points go with ``startActivity``. A request carries at most ``max_batch_points``.
- **Delete after confirmation only.** The outbox watermark moves when the server answered; a
  crash or a lost reply before that means the batch is sent again (the server counts the
  repeated points as duplicates: at most one batch per lost reply).
- **Oldest first, no flood.** After an outage the backlog drains in full batches, oldest first,
  with ``drain_interval_s`` between them: a bounded request rate, no per-point requests.
- **No ride holds back another.** Each activity waits out its own backoff after a failure; while
  one is held, the others are served. A ride stopped before its first point is closed locally
  (``DISCARDED``) and never sent.
- **Never give up.** Retryable failures (timeouts, connection errors, 5xx, 429) wait by the
  declared :class:`~tracker.retry.RetryPolicy` (exponential, jittered, capped) or the server's
  ``Retry-After`` when longer. A refused login waits the same way: the rider may log in again
  meanwhile, and every point stays queued.
- **Same title on every retried start**: the v3 idempotency handle (persisted by the outbox
  before the first request), so a lost ``startActivity`` reply never makes a second activity.
- **Stop after the last point.** ``stopActivity`` goes only once every point of the activity is
  confirmed.
- **Exactly once.** A ride recorded fully offline still goes up through the live endpoints
  (start with its persisted title, updates, stop): they are idempotent, ``uploadActivity`` is not.
- **GPX fallback** only for an activity the server kept rejecting live
  (``permanent_failures_before_upload`` permanent errors in a row). It is sent again only after a
  failure that proves it was not applied; after a lost reply it becomes ``UNCONFIRMED`` (not
  retried: a second copy would appear), after a refusal ``REJECTED``; both keep their points for
  `tracker export`.

Time comes from an injected ``sleep``/``monotonic`` pair, so tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from tracker.config import ActivitySettings, UplinkSettings
from tracker.engine.waiting import first_of
from tracker.errors import (
    ApiError,
    AuthError,
    LoginNeededError,
    PermanentApiError,
    RetryableApiError,
)
from tracker.logs import get_logger
from tracker.model import HeartRateSample, Point
from tracker.retry import Backoff, RetryPolicy, uplink_policy
from tracker.ride.activity import Activity, ActivityState, Event
from tracker.storage.outbox import ActivityRecord, Outbox, activity_with

log = get_logger("uplink")


class ActivityApi(Protocol):
    """What the uplink needs of ``tracker.mmt.client.MapMyTracksClient``."""

    async def start_activity(
        self,
        *,
        title: str,
        activity_type: str,
        status: str,
        tags: Sequence[str],
        points: Sequence[Point],
        hr: Sequence[HeartRateSample],
    ) -> int: ...

    async def update_activity(
        self, activity_id: int, points: Sequence[Point], hr: Sequence[HeartRateSample]
    ) -> None: ...

    async def stop_activity(self, activity_id: int) -> None: ...

    async def upload_activity(
        self, *, gpx: str, activity_type: str, status: str, title: str
    ) -> int: ...


GpxBuilder = Callable[[Sequence[Point], str, Sequence[HeartRateSample]], str]
T = TypeVar("T")


@dataclass
class LinkStatus:
    """What `tracker status` and the LED need to know about the link."""

    state: str = "idle"  # idle | up | down | login_needed
    last_success_wall: float | None = None
    last_error: str | None = None
    requests: int = 0
    failures: int = 0
    points_sent: int = 0
    hr_sent: int = 0
    next_retry_in_s: float | None = None
    # Activities waiting out their own backoff after a failure: local id -> the last error.
    held: dict[int, str] = field(default_factory=dict)


class Uplink:
    def __init__(
        self,
        outbox: Outbox,
        api: ActivityApi,
        uplink: UplinkSettings,
        activity: ActivitySettings,
        *,
        build_gpx: GpxBuilder,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        permanent_failures_before_upload: int = 3,
    ) -> None:
        self.outbox = outbox
        self.api = api
        self.settings = uplink
        self.activity_settings = activity
        self.build_gpx = build_gpx
        self._sleep = sleep
        self._wall = wall_clock
        self._policy = policy or uplink_policy(uplink.max_backoff_s)
        self._draw = (rng or random.Random()).random
        self._mono = monotonic
        # Per activity: its own backoff and when it may be tried again (no ride holds another).
        self._held: dict[int, _Hold] = {}
        self._backing_off = False
        self.status = LinkStatus()
        self._wake = asyncio.Event()
        # Committed points (or heart-rate samples) became sendable since the last step began.
        self._ready = asyncio.Event()
        self._idle = False  # the last step found nothing at all to do
        self._permanent: dict[int, int] = {}
        self.permanent_limit = permanent_failures_before_upload

    def wake(self) -> None:
        """Something changed that should not wait for the next interval (a stop, a start)."""
        self._wake.set()

    def points_ready(self) -> None:
        """The outbox made points or samples sendable (a commit): an idle uplink sends them
        ``batch_interval_s`` from now."""
        self._ready.set()

    async def run(self) -> None:
        """Forever: one step, then wait as the step says (interval, drain pause or backoff);
        with nothing at all to do, asleep without a timer until there is (issue 17)."""
        while True:
            self._ready.clear()  # the step sees everything sendable now
            pause = await self.step()
            if self._idle:
                await self._wait_for_work()
            else:
                await self._pause(pause, wakeable=not self._backing_off)

    async def _wait_for_work(self) -> None:
        """Nothing to send: no timer runs until points become sendable, and then
        ``batch_interval_s`` more pass before the next step, so that a batch gathers as the
        interval made it; a start or a stop wakes it at once."""
        self._wake.clear()
        if not self._ready.is_set():
            await first_of(self._ready.wait(), self._wake.wait())
            if self._wake.is_set():
                return
        await self._pause(self.settings.batch_interval_s, wakeable=True)

    async def run_until_drained(self) -> None:
        """Steps until no activity has work left, keeping the same pauses between requests
        (backoff, drain pacing) but not the batch interval (tests, benchmarks)."""
        while self.has_work():
            pause = await self.step()
            if self._backing_off or self.has_work():
                await self._pause(
                    pause if self._backing_off else self.settings.drain_interval_s, wakeable=False
                )

    def has_work(self) -> bool:
        return any(self._work_for(rec) for rec in self.outbox.activities())

    def held(self, local_id: int) -> _Hold | None:
        """The backoff an activity is waiting out after a failure (None: not held)."""
        return self._held.get(local_id)

    async def _pause(self, seconds: float, *, wakeable: bool) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if not wakeable:
            await self._sleep(seconds)
            return
        self._wake.clear()
        await first_of(self._sleep(seconds), self._wake.wait())

    # ------------------------------------------------------------------ one step

    async def step(self) -> float:
        """Do one request's worth of work; return how long to wait before the next step."""
        rec, _ = self._next_record()
        self._idle = rec is None
        if rec is None:
            self._backing_off = False
            if self.status.state == "up":
                self.status.state = "idle"
            return self.settings.batch_interval_s
        try:
            more = await self._work(rec)
        except Exception as exc:
            delay = await self._failed(rec, exc)
            _, wait = self._next_record()
            self._backing_off = wait is not None and wait > 0
            return max(wait, self.settings.drain_interval_s) if wait is not None else delay
        self._backing_off = False
        if more is None:  # nothing could be sent yet (the last points are being committed)
            return self.settings.drain_interval_s
        self._held.pop(rec.local_id, None)
        self.status.held.pop(rec.local_id, None)
        self.status.state = "up"
        self.status.last_success_wall = self._wall()
        self.status.last_error = None
        self.status.next_retry_in_s = None
        return self.settings.drain_interval_s if more else self.settings.batch_interval_s

    def _next_record(self) -> tuple[ActivityRecord | None, float | None]:
        """The activity to serve next and the seconds until it is due (None: no work at all).

        The oldest activity with work that is not waiting out a backoff is due now (0.0); when
        all of them are held, the one whose backoff ends first, with the time left. ``run``
        sleeps that long before the next step; a direct ``step()`` is taken as "after it"."""
        now = self._mono()
        soonest: tuple[float, ActivityRecord] | None = None
        for rec in self.outbox.activities():  # oldest activity first
            if not self._work_for(rec):
                continue
            hold = self._held.get(rec.local_id)
            if hold is None or hold.until <= now:
                return rec, 0.0
            if soonest is None or hold.until < soonest[0]:
                soonest = (hold.until, rec)
        if soonest is None:
            return None, None
        return soonest[1], soonest[0] - now

    def _work_for(self, rec: ActivityRecord) -> bool:
        a = rec.activity
        if a.needs_upload:
            return True
        if a.upload_only:
            return False
        if a.state is ActivityState.RECORDING:
            # Heart rate rides with points (v3 refuses an empty ``loc``): samples wait for the
            # next point, which the sampler's delay bound brings within max_delay_s.
            return self.outbox.pending_count(a.local_id) > 0
        return a.needs_stop_request

    async def _work(self, rec: ActivityRecord) -> bool | None:
        """One request for this activity. True when a backlog is waiting (drain at once);
        None when no request could be made yet."""
        a = rec.activity
        limit = self.settings.max_batch_points
        if not self.outbox.settled(a.local_id) and a.state is not ActivityState.RECORDING:
            return None  # the last points are still being committed: next step
        if a.state is ActivityState.STOPPING and a.remote_id is None and rec.points_recorded == 0:
            # Stopped before its first point (a double press, a cold receiver): nothing can be
            # sent (v3 needs a point to start), so it is closed here and holds back nobody.
            await self.outbox.update_activity(a.apply(Event.DISCARD))
            log.info(
                "activity stopped before its first point; closed locally, nothing to send",
                title=a.title,
                hr_samples_kept_locally=self.outbox.pending_hr_count(a.local_id),
            )
            return False
        if a.needs_upload:
            await self._upload(rec)
            return False
        points, hr = self.outbox.pending(a.local_id, limit)
        if not points and hr and a.remote_id is not None and a.state is ActivityState.STOPPING:
            # Samples after the ride's last point (GPS lost, strap still on) have no new point
            # to ride with: the last point goes again and carries them. The server keeps one
            # point per whole second, so the repeat is counted as a duplicate, not stored.
            sent = [
                p for p in await self.outbox.all_points(a.local_id) if p.timestamp <= rec.sent_upto
            ]
            points = sent[-1:]
            if not points:
                return None  # the ride's points are not on disk yet (memory mode): next step
            await self._call(rec, self.api.update_activity(a.remote_id, points, hr))
            await self.outbox.confirm(a.local_id, [], hr)
            self.status.hr_sent += len(hr)
            return False
        if points:
            if a.remote_id is None:
                remote_id = await self._call(
                    rec,
                    self.api.start_activity(
                        title=a.title,
                        activity_type=self.activity_settings.type,
                        status=self.activity_settings.status,
                        tags=self.activity_settings.tags,
                        points=points,
                        hr=hr,
                    ),
                )
                await self.outbox.update_activity(activity_with(rec, remote_id=int(remote_id)))
                log.info("activity started", title=a.title, remote_id=remote_id, points=len(points))
            else:
                await self._call(rec, self.api.update_activity(a.remote_id, points, hr))
            await self.outbox.confirm(a.local_id, points, hr)
            self.status.points_sent += len(points)
            self.status.hr_sent += len(hr)
            self._permanent.pop(a.local_id, None)
            return self.outbox.pending_count(a.local_id) >= limit or (
                a.state is ActivityState.STOPPING and self.outbox.pending_count(a.local_id) > 0
            )
        if a.needs_stop_request and a.remote_id is not None:
            if not self.outbox.all_sent(a.local_id):
                return None  # the last points are still being committed: next step
            await self._call(rec, self.api.stop_activity(a.remote_id))
            await self.outbox.update_activity(rec.activity.apply(Event.STOP_CONFIRMED))
            log.info("activity stopped", title=a.title, remote_id=a.remote_id)
        return False

    async def _upload(self, rec: ActivityRecord) -> None:
        a = rec.activity
        points = await self.outbox.all_points(a.local_id)
        if not points:
            await self.outbox.update_activity(_stopped(a).apply(Event.DISCARD))
            log.info("activity has no points; closed locally, nothing to upload", title=a.title)
            return
        gpx = self.build_gpx(points, a.title, await self.outbox.all_heart_rate(a.local_id))
        try:
            remote_id = await self._call(
                rec,
                self.api.upload_activity(
                    gpx=gpx,
                    activity_type=self.activity_settings.type,
                    status=self.activity_settings.status,
                    title=a.title,
                ),
            )
        except RetryableApiError as exc:
            if not exc.maybe_applied:
                raise  # surely not applied: the backoff sends it again
            await self.outbox.update_activity(_stopped(a).apply(Event.UPLOAD_LOST))
            log.error(
                "the GPX upload's reply was lost; not sent again, since that could make a second "
                "copy: check the website, `tracker export` writes the GPX",
                title=a.title,
                error=str(exc),
            )
            return
        except PermanentApiError as exc:
            await self.outbox.update_activity(_stopped(a).apply(Event.UPLOAD_REFUSED))
            log.error(
                "the server refused the GPX upload; the ride stays on disk (`tracker export`)",
                title=a.title,
                error=str(exc),
            )
            return
        rec = self.outbox.record(a.local_id)
        done = _finish(rec)
        await self.outbox.update_activity(replace(done, remote_id=int(remote_id)))
        # The GPX carried the heart rate too (gpxtpx:hr at each point): nothing is left waiting.
        await self.outbox.confirm(a.local_id, points, self.outbox.pending_hr(a.local_id))
        self.status.points_sent += len(points)
        log.info("activity uploaded as GPX", title=a.title, remote_id=remote_id, points=len(points))

    async def _call(self, rec: ActivityRecord, request: Awaitable[T]) -> T:
        self.status.requests += 1
        ok = False
        try:
            result = await request
            ok = True
            return result
        finally:
            self.outbox.count_request(rec.local_id, 0, ok=ok)

    # ------------------------------------------------------------------ failures

    async def _failed(self, rec: ActivityRecord, exc: Exception) -> float:
        self.status.failures += 1
        hold = self._held.get(rec.local_id)
        if hold is None:
            hold = self._held[rec.local_id] = _Hold(
                Backoff(self._policy, self._sleep, draw=self._draw)
            )
        delay = hold.backoff.failure(exc.retry_after if isinstance(exc, ApiError) else None)
        hold.until = self._mono() + delay
        hold.error = self.status.held[rec.local_id] = f"{type(exc).__name__}: {exc}"
        self.status.next_retry_in_s = delay
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, LoginNeededError | AuthError):
            self.status.state = "login_needed"
            log.error(
                "the server refused our login; points stay queued (run `tracker login`)",
                error=type(exc).__name__,
                retry_in_s=round(delay, 1),
            )
        elif isinstance(exc, PermanentApiError):
            self.status.state = "up"  # the server answered: the link itself works
            count = self._permanent.get(rec.local_id, 0) + 1
            self._permanent[rec.local_id] = count
            log.error(
                "the server rejected a request",
                title=rec.activity.title,
                error=str(exc),
                in_a_row=count,
            )
            if count >= self.permanent_limit and not rec.activity.upload_only:
                log.error(
                    "live streaming rejected repeatedly; the ride goes up as GPX when it stops",
                    title=rec.activity.title,
                )
                await self.outbox.update_activity(activity_with(rec, upload_only=True))
                self._held.pop(rec.local_id, None)
                self.status.held.pop(rec.local_id, None)
                return 0.0
        else:
            self.status.state = "down"
            attempt = hold.backoff.attempt
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "upload failed; will retry",
                    title=rec.activity.title,
                    error=self.status.last_error,
                    attempt=attempt,
                    retry_in_s=round(delay, 1),
                    waiting=self.outbox.pending_count(),
                )
        return delay


@dataclass
class _Hold:
    """One activity waiting out its own backoff after a failure."""

    backoff: Backoff
    until: float = 0.0  # monotonic time before which it is not tried again
    error: str | None = None


def _stopped(a: Activity) -> Activity:
    return a.apply(Event.STOP) if a.state is ActivityState.RECORDING else a


def _finish(rec: ActivityRecord) -> Activity:
    return _stopped(rec.activity).apply(Event.UPLOAD_CONFIRMED)
