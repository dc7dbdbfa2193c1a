"""The service behind `tracker run`: every part wired together as supervised asyncio tasks.

    fix stream (serial/pty/replay/gpsd → parser → filters → ring buffer)
        → sampler → outbox (group commit ≥ 1/s) → uplink → Map My Tracks
    button / `tracker start|stop` / autostart / end of replay → activity state machine
    heart-rate strap → outbox (same durability) → uplink (``hr``)
    engine state → DeviceState → LEDs, control socket (`tracker status`), systemd watchdog

Why it looks like this:

- **One event loop, no locks on the hot path.** Fixes, button presses and socket commands are
  all handled in the loop; only SQLite runs in its own thread (see the outbox).
- **Supervised tasks.** A task that fails is logged and restarted with a growing pause; one
  broken part (a flaky receiver, a bug in the LED code) never stops the recording.
- **A restart is not a stop.** SIGTERM/SIGINT commit what is staged, close the database and leave
  a recording activity recording: the next start restores the sampler from the disk and the
  ride goes on (fixes older than the restored state are skipped).
- **Everything injectable.** The fix stream, the API client, the clocks and the hardware can be
  handed in, so the demo and the tests run the real service with a pty receiver, the emulator
  and gpiozero's MockFactory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tracker.bike.device_state import DeviceState, device_state
from tracker.config import Settings
from tracker.engine.control_socket import ControlServer, socket_path
from tracker.engine.uplink import ActivityApi, Uplink
from tracker.logs import get_logger
from tracker.model import Fix, HeartRateSample
from tracker.retry import SUPERVISOR, Backoff, RetryPolicy, uplink_policy
from tracker.ride.activity import Event, Trigger, make_title
from tracker.storage.outbox import ActivityRecord, Outbox, SamplerState

if TYPE_CHECKING:
    from tracker.bike.shutdown import SafeShutdown

log = get_logger("engine")

COMMIT_INTERVAL_S = 0.5  # group commits twice a second: a crash loses < 1 s of fixes
STATE_INTERVAL_S = 0.25  # LED / status refresh
PRUNE_INTERVAL_S = 3600.0


class SamplerLike(Protocol):
    def feed(self, fix: Fix) -> list[Any]: ...
    def flush(self) -> list[Any]: ...
    def snapshot(self) -> dict[str, Any]: ...


FixStreamFactory = Callable[[], AsyncIterable[Fix]]
ClientFactory = Callable[[], AbstractAsyncContextManager[ActivityApi]]


@dataclass
class TaskHealth:
    restarts: int = 0
    last_error: str | None = None
    running: bool = False


@dataclass
class EngineCounters:
    fixes: int = 0
    fixes_recorded: int = 0
    stale_fixes: int = 0
    points_kept: int = 0
    hr_samples: int = 0
    last_fix: Fix | None = None
    last_fix_mono: float | None = None


@dataclass
class Service:
    """The running tracker. ``await Service(settings).run()`` until SIGTERM/SIGINT or ``stop()``."""

    settings: Settings
    fix_stream: FixStreamFactory | None = None
    client_factory: ClientFactory | None = None
    hardware: Any = None  # tracker.bike.gpio.Hardware, or None for "open it from settings"
    open_hardware: bool = True
    heart_rate: Any = None  # a HeartRateSource, or None for "open it from settings"
    commit_interval_s: float = COMMIT_INTERVAL_S
    handle_signals: bool = True
    stop_on_stream_end: bool = True  # end of a replay = stop the activity
    monotonic: Callable[[], float] = time.monotonic
    retry_policy: RetryPolicy | None = None  # None: from [uplink] max_backoff_s
    counters: EngineCounters = field(default_factory=EngineCounters)

    def __post_init__(self) -> None:
        self.data_dir = self.settings.storage.resolved_data_dir()
        self.outbox = Outbox(
            self.data_dir,
            max_mb=self.settings.storage.max_mb,
            keep_days=self.settings.storage.keep_days,
        )
        self.uplink: Uplink | None = None
        self.client: Any = None
        self.sampler: SamplerLike | None = None
        self._last_fix_unix: float | None = None
        self._sampler_dirty = False
        self._shutdown = asyncio.Event()
        self._ready = asyncio.Event()
        self._activity_lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.health: dict[str, TaskHealth] = {}
        self.gps_status: Callable[[], dict[str, Any]] = dict
        self._stream_obj: Any = None
        self._started_mono = self.monotonic()
        self._started_wall = time.time()
        self.control = ControlServer(socket_path(self.data_dir), self._on_command)
        self.receiver_present = False
        self.shown_state: DeviceState | None = None
        self._pending_calls: set[asyncio.Future[Any]] = set()
        self._autostart_armed = self.settings.activity.autostart
        self._safe_shutdown: SafeShutdown | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Open everything, run the tasks until asked to stop, close cleanly."""
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        await self.outbox.open()
        self.outbox.set_state_provider(self._stage_sampler_state)
        self._resume()
        try:
            await self.control.start()
        except OSError as exc:  # e.g. a read-only data dir: record on, without the socket
            log.error("control socket unavailable: `tracker start/stop/status` cannot reach "
                      "this service", path=str(self.control.path), reason=str(exc))
        try:
            async with self._client() as client:
                self.client = client
                self.uplink = Uplink(
                    self.outbox,
                    client,
                    self.settings.uplink,
                    self.settings.activity,
                    build_gpx=_build_gpx,
                    policy=self.retry_policy
                    or uplink_policy(self.settings.uplink.max_backoff_s),
                )
                self._open_hardware()
                self._spawn("gps", self._gps_task, restart=True)
                self._spawn("commit", self._commit_task, restart=True)
                self._spawn("uplink", self.uplink.run, restart=True)
                self._spawn("state", self._state_task, restart=True)
                self._spawn("prune", self._prune_task, restart=True)
                if self.heart_rate is not None or self.settings.heart_rate.enabled:
                    self._spawn("heart_rate", self._heart_rate_task, restart=True)
                self._spawn("watchdog", self._watchdog_task, restart=False)
                self._ready.set()
                log.info(
                    "tracker running", data_dir=str(self.data_dir), activity=self._current_title()
                )
                await self._shutdown.wait()
        finally:
            await self._close()
            if self.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    def stop(self) -> None:
        """Ask the service to shut down (what SIGTERM does). The activity stays open."""
        self._shutdown.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received; flushing and closing (the activity stays open)", signal=sig.name)
        self._shutdown.set()

    async def _close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._stage_sampler_state()
        await self.outbox.close()
        await self.control.close()
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                self.hardware.close()
        log.info(
            "tracker stopped cleanly",
            activity=self._current_title(),
            waiting=self.outbox.pending_count(),
        )

    def _client(self) -> AbstractAsyncContextManager[Any]:
        if self.client_factory is not None:
            return self.client_factory()
        from tracker.mmt.client import MapMyTracksClient, UnconfiguredClient
        from tracker.mmt.tokens import TokenStore

        if not (self.settings.api.client_id and self.settings.api.client_secret):
            return UnconfiguredClient()  # record anyway; points wait until it is configured
        return MapMyTracksClient(
            self.settings.api, TokenStore.in_dir(self.data_dir), clock=self._trusted_clock
        )

    def _trusted_clock(self) -> float | None:
        """GPS time when we have it (a Pi has no RTC), else the system clock if plausible."""
        c = self.counters
        if c.last_fix is not None and c.last_fix_mono is not None:
            return c.last_fix.unix + (self.monotonic() - c.last_fix_mono)
        from tracker.mmt.oauth import system_clock

        return system_clock()

    # ------------------------------------------------------------------ supervision

    def _spawn(self, name: str, fn: Callable[[], Awaitable[None]], *, restart: bool) -> None:
        health = self.health.setdefault(name, TaskHealth())

        async def supervised() -> None:
            backoff = Backoff(SUPERVISOR, asyncio.sleep)
            while True:
                health.running = True
                try:
                    await fn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    health.restarts += 1
                    health.last_error = f"{type(exc).__name__}: {exc}"
                    health.running = False
                    if not restart:
                        log.exception("task failed", task=name)
                        return
                    pause = backoff.failure()
                    log.exception("task failed; restarting it", task=name, pause_s=pause)
                    await asyncio.sleep(pause)
                    continue
                health.running = False
                return

        self._tasks[name] = asyncio.create_task(supervised(), name=f"tracker-{name}")

    # ------------------------------------------------------------------ activity

    def _resume(self) -> None:
        rec = self.outbox.current()
        if rec is None:
            return
        state = self.outbox.sampler_state(rec.local_id)
        self.sampler = self._new_sampler(state.snapshot if state else None)
        self._last_fix_unix = state.last_fix_unix if state else None
        log.info(
            "resuming the activity the disk says is recording",
            title=rec.activity.title,
            remote_id=rec.activity.remote_id,
            waiting=len(rec.pending),
        )

    def _new_sampler(self, snapshot: dict[str, Any] | None = None) -> SamplerLike:
        from tracker.ride.sampler import Sampler

        if snapshot is not None:
            restored: SamplerLike = Sampler.restore(snapshot)
            return restored
        s = self.settings.sampler
        fresh: SamplerLike = Sampler(max_error_m=s.max_error_m, max_delay_s=s.max_delay_s)
        return fresh

    def current(self) -> ActivityRecord | None:
        return self.outbox.current()

    def _current_title(self) -> str | None:
        rec = self.current()
        return rec.activity.title if rec else None

    async def start_activity(self, trigger: Trigger) -> ActivityRecord:
        """Start a new activity (a no-op answering the current one while recording)."""
        async with self._activity_lock:
            rec = self.current()
            if rec is not None:
                return rec
            title = make_title(
                self.settings.activity.title_prefix,
                datetime.now().astimezone(),
                secrets.token_hex(3),
            )
            self.sampler = self._new_sampler()
            self._last_fix_unix = None
            rec = await self.outbox.create_activity(title)
            log.info("activity started", title=title, trigger=trigger.value)
            if self.uplink is not None:
                self.uplink.wake()
            return rec

    async def stop_activity(self, trigger: Trigger) -> ActivityRecord | None:
        """Stop the recording activity: last point out of the sampler, state STOPPING, on disk."""
        async with self._activity_lock:
            rec = self.current()
            if rec is None:
                return None
            if self.sampler is not None:
                tail = self.sampler.flush()
                if tail:
                    self.outbox.stage(rec.local_id, tail)
                    self.counters.points_kept += len(tail)
                self._stage_sampler_state()
            await self.outbox.update_activity(rec.activity.apply(Event.STOP))
            self.sampler = None
            # Autostart means "start riding when the tracker comes up with a fix", not "restart
            # the moment the rider stops": after a stop only the button or a command starts.
            self._autostart_armed = False
            log.info(
                "activity stopped; sending what waits, then stopActivity",
                title=rec.activity.title,
                trigger=trigger.value,
                waiting=self.outbox.pending_count(rec.local_id),
            )
            if self.uplink is not None:
                self.uplink.wake()
            return rec

    async def toggle(self, trigger: Trigger) -> None:
        if self.current() is None:
            await self.start_activity(trigger)
        else:
            await self.stop_activity(trigger)

    # ------------------------------------------------------------------ fixes

    async def _gps_task(self) -> None:
        stream = self._open_stream()
        async for fix in stream:
            await self.on_fix(fix)
        log.info("the fix stream ended (end of the replay)")
        if self.stop_on_stream_end:
            await self.stop_activity(Trigger.REPLAY_END)
        await asyncio.Event().wait()  # stay "done" without being restarted

    def _open_stream(self) -> AsyncIterable[Fix]:
        if self.fix_stream is not None:
            stream = self.fix_stream()
        else:
            from tracker.gps.stream import open_fix_stream

            stream = open_fix_stream(self.settings.gps, self.settings.filters)
        self._stream_obj = stream
        return stream

    async def on_fix(self, fix: Fix) -> None:
        c = self.counters
        c.fixes += 1
        c.last_fix = fix
        c.last_fix_mono = self.monotonic()
        if self.current() is None and self._autostart_armed:
            await self.start_activity(Trigger.AUTOSTART)
        rec = self.current()
        if rec is None or self.sampler is None:
            return
        if self._last_fix_unix is not None and fix.unix <= self._last_fix_unix:
            c.stale_fixes += 1  # e.g. buffered in the pty while we were down: already covered
            return
        points = self.sampler.feed(fix)
        self._last_fix_unix = fix.unix
        self._sampler_dirty = True
        c.fixes_recorded += 1
        if points:
            self.outbox.stage(rec.local_id, points)
            c.points_kept += len(points)

    def on_heart_rate(self, sample: HeartRateSample) -> None:
        rec = self.current()
        if rec is None:
            return
        self.outbox.stage(rec.local_id, hr=[sample])
        self.counters.hr_samples += 1

    def _stage_sampler_state(self) -> None:
        rec = self.current()
        if rec is None or self.sampler is None or not self._sampler_dirty:
            return
        self.outbox.stage(
            rec.local_id, sampler=SamplerState(self.sampler.snapshot(), self._last_fix_unix)
        )
        self._sampler_dirty = False

    async def _commit_task(self) -> None:
        while True:
            await asyncio.sleep(self.commit_interval_s)
            # The outbox calls _stage_sampler_state when it takes the batch (same loop turn as
            # the staged points): what is on disk is always consistent.
            await self.outbox.commit()

    async def _prune_task(self) -> None:
        while True:
            await self.outbox.prune()
            await asyncio.sleep(PRUNE_INTERVAL_S)

    async def _heart_rate_task(self) -> None:
        source = self.heart_rate
        if source is None:
            from tracker.bike.heart_rate.source import open_heart_rate_source
            from tracker.errors import ConfigError

            try:
                source = open_heart_rate_source(
                    self.settings.heart_rate, self._gps_time_for_hr, clock=self.monotonic
                )
            except ConfigError as exc:
                # A wrong [heart_rate] device is no reason to stop recording the ride, and
                # restarting this task cannot fix the file: say it once, carry on without HR.
                log.error("heart rate disabled: bad configuration", problem=str(exc))
                self.health["heart_rate"].last_error = str(exc)
                return
            self.heart_rate = source
        if source is None:
            return
        async for sample in source:
            self.on_heart_rate(sample)

    def _gps_time_for_hr(self) -> tuple[float, float] | None:
        """(GPS unix time of the latest fix, monotonic time it arrived): the HR clock anchor."""
        c = self.counters
        if c.last_fix is None or c.last_fix_mono is None:
            return None
        return (c.last_fix.unix, c.last_fix_mono)

    # ------------------------------------------------------------------ hardware, state

    def _open_hardware(self) -> None:
        if self.hardware is None and self.open_hardware:
            from tracker.bike.gpio import open_hardware

            s = self.settings
            self.hardware = open_hardware(s.gpio, s.button, s.leds)
        if self.hardware is not None:
            self.hardware.on_short_press(self._on_short_press)
            self.hardware.on_long_press(self._on_long_press)

    def _background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending_calls.add(task)
        task.add_done_callback(self._pending_calls.discard)

    def _on_short_press(self) -> None:
        self._background(self.toggle(Trigger.BUTTON))

    def _on_long_press(self) -> None:
        action = self.settings.button.long_press
        log.info("long press", action=action)
        if action == "shutdown":
            from tracker.bike.shutdown import SafeShutdown

            if self.hardware is not None:
                self.hardware.show_shutting_down()

            # One instance for the life of the service: it ignores a second call, so a rider
            # holding the button twice does not power off twice.
            if self._safe_shutdown is None:
                self._safe_shutdown = SafeShutdown.from_settings(self.settings.button)
                self._safe_shutdown.set_flush(self._flush_for_shutdown)
            self._background(self._safe_shutdown())
        elif action == "upload":
            self._background(self.stop_activity(Trigger.BUTTON))

    async def _flush_for_shutdown(self) -> None:
        await self.stop_activity(Trigger.SHUTDOWN)
        self._stage_sampler_state()
        await self.outbox.commit()

    async def _state_task(self) -> None:
        while True:
            state = self.device_state()
            if self.hardware is not None and state is not self.shown_state:
                self.hardware.show(state)
            self.shown_state = state
            await asyncio.sleep(STATE_INTERVAL_S)

    async def _watchdog_task(self) -> None:
        from tracker.bike.watchdog import Watchdog

        dog = Watchdog()
        dog.ready()
        try:
            await dog.run()
            await asyncio.Event().wait()
        finally:
            dog.stopping()

    def _gps(self) -> dict[str, Any]:
        stream = self._stream_obj
        status: Any = getattr(stream, "status", None)
        if callable(status):
            status = status()
        if hasattr(status, "as_dict"):
            status = status.as_dict()
        out = dict(status) if isinstance(status, dict) else {}
        fix = self.counters.last_fix
        fresh = (
            fix is not None
            and self.counters.last_fix_mono is not None
            and (self.monotonic() - self.counters.last_fix_mono < 5.0)
        )
        out.setdefault("receiver_present", bool(fresh) or self.counters.fixes > 0)
        out.setdefault("has_fix", bool(fresh))
        if fix is not None:
            out.setdefault("last_fix_time", fix.time.isoformat())
            out.setdefault("lat", fix.lat)
            out.setdefault("lon", fix.lon)
            out.setdefault("sats", fix.sats)
            out.setdefault("mode", int(fix.mode))
        out["fixes"] = self.counters.fixes
        return out

    def login_needed(self) -> bool:
        flag = getattr(self.client, "login_needed", False)
        try:
            return bool(flag)
        except Exception:
            return False

    def device_state(self) -> DeviceState:
        gps = self._gps()
        link = self.uplink.status.state if self.uplink else "idle"
        failed = any(h.restarts and not h.running for h in self.health.values())
        return device_state(
            error=self.outbox.storage_error is not None or failed,
            login_needed=link == "login_needed" or self.login_needed(),
            receiver_present=bool(gps.get("receiver_present")),
            has_fix=bool(gps.get("has_fix")),
            recording=self.current() is not None,
            points_waiting=self.outbox.pending_count() + self.outbox.unsaved_count(),
            link_up=link in ("up", "idle"),
        )

    def status(self) -> dict[str, Any]:
        """Everything `tracker status` shows (JSON-able)."""
        rec = self.current()
        shown = (
            rec
            or next((r for r in reversed(self.outbox.activities()) if r.activity.is_open), None)
            or (self.outbox.activities()[-1] if self.outbox.activities() else None)
        )
        up = self.uplink.status if self.uplink else None
        client = self.client
        seconds_left = None
        if client is not None and hasattr(client, "token_seconds_left"):
            with contextlib.suppress(Exception):
                seconds_left = client.token_seconds_left()
        hr_status: dict[str, Any] = {"state": "disabled"}
        if self.heart_rate is not None:
            from tracker.bike.heart_rate.source import heart_rate_status

            hr_status = heart_rate_status(self.heart_rate)
        drops = {}
        gps = self._gps()
        for key in ("filters", "drops"):  # drop counters by reason
            if isinstance(gps.get(key), dict):
                drops = gps[key]
        return {
            "pid": os.getpid(),
            "uptime_s": round(self.monotonic() - self._started_mono, 1),
            "device_state": self.device_state().value,
            "gps": gps,
            "drops": drops,
            "engine": {
                "fixes": self.counters.fixes,
                "fixes_recorded": self.counters.fixes_recorded,
                "stale_fixes_skipped": self.counters.stale_fixes,
                "points_kept": self.counters.points_kept,
                "hr_samples": self.counters.hr_samples,
            },
            "activity": _activity_json(shown, self.outbox) if shown else None,
            "recording": rec is not None,
            "uplink": {
                "link": up.state if up else "idle",
                "last_success": _iso(up.last_success_wall) if up else None,
                "last_error": up.last_error if up else None,
                "requests": up.requests if up else 0,
                "failures": up.failures if up else 0,
                "next_retry_in_s": up.next_retry_in_s if up else None,
                "points_sent": up.points_sent if up else 0,
            },
            "points_waiting": self.outbox.pending_count() + self.outbox.unsaved_count(),
            "login": {
                "state": "login_needed" if self.login_needed() else "logged_in",
                "token_seconds_left": seconds_left,
            },
            "storage": {
                "path": str(self.outbox.path),
                "error": self.outbox.storage_error,
                "used_bytes": self.outbox.used_bytes(),
            },
            "heart_rate": hr_status,
            "tasks": {
                n: {"restarts": h.restarts, "last_error": h.last_error}
                for n, h in self.health.items()
            },
        }

    async def _on_command(self, cmd: str, request: dict[str, Any]) -> dict[str, Any]:
        if cmd == "status":
            return {"ok": True, "status": self.status()}
        if cmd == "start":
            before = self.current()
            rec = await self.start_activity(Trigger.COMMAND)
            return {"ok": True, "started": before is None, "activity": rec.activity.title}
        if cmd == "stop":
            stopped = await self.stop_activity(Trigger.COMMAND)
            return {
                "ok": True,
                "stopped": stopped is not None,
                "activity": stopped.activity.title if stopped else None,
            }
        return {"ok": False, "error": f"unknown command {cmd!r} (known: status, start, stop)"}


def _activity_json(rec: ActivityRecord, outbox: Outbox) -> dict[str, Any]:
    a = rec.activity
    return {
        "title": a.title,
        "state": a.state.value,
        "remote_id": a.remote_id,
        "upload_only": a.upload_only,
        "points_recorded": rec.points_recorded,
        "points_sent": rec.points_recorded - len(rec.pending) - len(rec.staged),
        "points_waiting": len(rec.pending) + len(rec.staged),
        "requests": rec.requests,
        "last_upload": _iso(rec.last_upload_at),
    }


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def _build_gpx(points: Any, title: str) -> str:
    from tracker.mmt.client import build_gpx

    return build_gpx(points, title)
