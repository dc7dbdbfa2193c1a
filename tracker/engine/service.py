"""The service behind `tracker run`: the composition root. It builds the parts, runs them as
supervised asyncio tasks and stops them; what each part does lives in its own module:

    fix stream (serial/pty/replay/gpsd → parser → filters → ring buffer)
        → sampler → outbox (group commit ≥ 1/s) → uplink → Map My Tracks
    button / `tracker start|stop` / autostart / end of replay → activity state machine
    heart-rate strap → outbox (same durability) → uplink (``hr``)
    engine state → DeviceState → LEDs, control socket (`tracker status`), systemd watchdog

    recorder.py (fixes, sampler, heart rate → outbox)   activities.py (start/stop use cases)
    controls.py (button, socket commands, LEDs)          uplink.py (outbox → Map My Tracks)
    status.py (the one typed status)                     supervisor.py (restarts failed tasks)

Why it looks like this:

- **One event loop, no locks on the hot path.** Fixes, button presses and socket commands are
  all handled in the loop; only SQLite runs in its own thread (see the outbox).
- **Supervised tasks** (:mod:`~tracker.engine.supervisor`). A task that fails is logged and
  restarted with a growing pause; one broken part never stops the recording.
- **A restart is not a stop.** SIGTERM/SIGINT commit what is staged, close the database and leave
  a recording activity recording: the next start restores the sampler from the disk and the
  ride goes on (fixes older than the restored state are skipped).
- **Nothing wakes without a reason.** No task polls: the commit task sleeps until something is
  staged, the LEDs look again when an input of their state changed, the uplink waits for its
  interval or a wake, pruning runs hourly, the watchdog at systemd's period only. Every timer
  that remains and why: docs/engine.md, "Timers".
- **Import what is used.** The API client (aiohttp, authlib), the GPIO stack (gpiozero), the
  strap (bleak) and the serial port are imported when the configuration uses them, not with
  this module.
- **Everything injectable.** The fix stream, the API client, the clocks and the hardware can be
  handed in, so the demo and the tests run the real service with a pty receiver, the emulator
  and gpiozero's MockFactory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tracker.config import Settings
from tracker.engine.activities import Activities
from tracker.engine.control_socket import ControlServer, socket_path
from tracker.engine.controls import Controls, Device
from tracker.engine.recorder import COMMIT_INTERVAL_S, EngineCounters, Recorder, SamplerLike
from tracker.engine.status import LoginSection, ServiceStatus, build_status
from tracker.engine.supervisor import Supervisor
from tracker.engine.uplink import ActivityApi, Uplink
from tracker.logs import get_logger
from tracker.model import Fix, HeartRateSample, Point
from tracker.retry import RetryPolicy, uplink_policy
from tracker.ride.activity import Trigger
from tracker.storage.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tracker.bike.heart_rate.source import HeartRateSource

log = get_logger("engine")

PRUNE_INTERVAL_S = 3600.0


class ApiClient(ActivityApi, Protocol):
    """The API client as the engine sees it: the uplink's calls and the login state for status
    (``tracker.mmt.client.MapMyTracksClient``, or ``UnconfiguredClient`` without credentials)."""

    @property
    def login_needed(self) -> bool: ...

    def token_seconds_left(self) -> float | None: ...


FixStreamFactory = Callable[[], AsyncIterable[Fix]]
ClientFactory = Callable[[], AbstractAsyncContextManager[ApiClient]]


@dataclass
class Service:
    """The running tracker. ``await Service(settings).run()`` until SIGTERM/SIGINT or ``stop()``.

    ``fix_stream``, ``client_factory``, ``hardware`` and ``heart_rate`` may be handed in (or set
    before ``run``); None opens the real one from the settings.
    """

    settings: Settings
    fix_stream: FixStreamFactory | None = None
    client_factory: ClientFactory | None = None
    hardware: Device | None = None
    open_hardware: bool = True
    heart_rate: HeartRateSource | None = None
    commit_interval_s: float = COMMIT_INTERVAL_S
    handle_signals: bool = True
    stop_on_stream_end: bool = True  # end of a replay = stop the activity
    monotonic: Callable[[], float] = time.monotonic
    retry_policy: RetryPolicy | None = None  # None: from [uplink] max_backoff_s
    counters: EngineCounters = field(default_factory=EngineCounters)

    def __post_init__(self) -> None:
        self.data_dir = self.settings.storage.resolved_data_dir()
        storage = self.settings.storage
        self.outbox = Outbox(self.data_dir, max_mb=storage.max_mb, keep_days=storage.keep_days)
        self.supervisor = Supervisor(changed=self._state_changed)
        self.recorder = Recorder(
            self.outbox,
            self._new_sampler,
            monotonic=self.monotonic,
            timer=time.monotonic,  # agrees with the commit task's real asyncio.sleep
            commit_interval_s=self.commit_interval_s,
            counters=self.counters,
            changed=self._state_changed,
        )
        self.activities = Activities(
            self.outbox, self.recorder, self.settings.activity, changed=self._activity_changed
        )
        self.controls = Controls(
            self.activities, self.settings.button, status=self.status, flush=self.outbox.commit
        )
        self.control = ControlServer(socket_path(self.data_dir), self.controls.command)
        self.uplink: Uplink | None = None  # built once the client is open
        self.client: ApiClient | None = None
        self._shutdown = asyncio.Event()
        self._ready = asyncio.Event()
        self._started_mono = self.monotonic()
        self._requests_seen = 0
        self._uplink_seen: tuple[object, ...] | None = None  # what the last step left

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Open everything, run the tasks until asked to stop, close cleanly."""
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        await self.outbox.open()
        self.recorder.resume()
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
                    sleep=self._uplink_sleep,
                )
                self.outbox.on_sendable = self.uplink.points_ready
                self._open_hardware()
                spawn = self.supervisor.spawn
                spawn("gps", self._gps_task, restart=True)
                spawn("commit", self.recorder.commit_forever, restart=True)
                spawn("uplink", self.uplink.run, restart=True)
                spawn("state", self._state_task, restart=True)
                spawn("prune", self._prune_task, restart=True)
                if self.heart_rate is not None or self.settings.heart_rate.enabled:
                    spawn("heart_rate", self._heart_rate_task, restart=True)
                spawn("watchdog", _watchdog_task, restart=False)
                self._ready.set()
                log.info("tracker running", data_dir=str(self.data_dir),
                         activity=self.activities.current_title())  # fmt: skip
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

    def status(self) -> ServiceStatus:
        """The service's state now (what `tracker status` and the LEDs show)."""
        client = self.client
        login = LoginSection("logged_in", None)
        if client is not None:
            needed = client.login_needed
            login = LoginSection("login_needed" if needed else "logged_in",
                                 client.token_seconds_left())  # fmt: skip
        return build_status(
            pid=os.getpid(),
            uptime_s=self.monotonic() - self._started_mono,
            gps=self.recorder.gps(),
            counters=self.counters,
            outbox=self.outbox,
            link=self.uplink.status if self.uplink else None,
            login=login,
            # heart_rate_status() without importing the strap's module when there is none.
            heart_rate=self.heart_rate.status() if self.heart_rate else {"state": "disabled"},
            tasks=self.supervisor.health,
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received; flushing and closing (the activity stays open)", signal=sig.name)
        self._shutdown.set()

    async def _close(self) -> None:
        await self.supervisor.stop()
        await self.outbox.close()
        await self.control.close()
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                self.hardware.close()
        log.info("tracker stopped cleanly", activity=self.activities.current_title(),
                 waiting=self.outbox.pending_count())  # fmt: skip

    # ------------------------------------------------------------------ building the parts

    def _client(self) -> AbstractAsyncContextManager[ApiClient]:
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
        """The system clock when the kernel says it is synchronised (NTP, chrony), else GPS
        time (a Pi has no RTC), else the system clock if plausible. Only stamped into the token
        file for `tracker status`: no refresh is decided on it (tracker.mmt.expiry)."""
        from tracker.gps.sysclock import trusted_now

        return trusted_now(self.recorder.gps_now())

    def _new_sampler(self, snapshot: dict[str, Any] | None) -> SamplerLike:
        from tracker.ride.sampler import Sampler

        if snapshot is not None:
            return Sampler.restore(snapshot)
        s = self.settings.sampler
        return Sampler(max_error_m=s.max_error_m, max_delay_s=s.max_delay_s)

    def _open_hardware(self) -> None:
        if self.hardware is None and self.open_hardware:
            from tracker.bike.gpio import open_hardware

            s = self.settings
            self.hardware = open_hardware(s.gpio, s.button, s.leds)
        if self.hardware is not None:
            self.controls.attach(self.hardware)

    def _activity_changed(self) -> None:
        """A start or a stop: the uplink has work now, and the LEDs another state."""
        if self.uplink is not None:
            self.uplink.wake()
        self._state_changed()

    def _state_changed(self) -> None:
        self.controls.changed()

    async def _uplink_sleep(self, seconds: float) -> None:
        """The uplink's sleep. It sleeps after each step, when what the step changed (the link,
        the login, points confirmed, the storage) has settled: the LEDs look again then if any
        of that did change (an idle step every batch_interval_s changes nothing, and a look
        builds the whole status), and a request counted on a failure is committed even when
        nothing else is staged."""
        outcome = self._uplink_outcome()
        if outcome != self._uplink_seen:
            self._uplink_seen = outcome
            self._state_changed()
        uplink = self.uplink
        if uplink is not None and uplink.status.requests != self._requests_seen:
            self._requests_seen = uplink.status.requests
            self.recorder.commit_within(self.commit_interval_s)
        await asyncio.sleep(seconds)

    def _uplink_outcome(self) -> tuple[object, ...]:
        """What an uplink step can change among the inputs of the device state."""
        link, client, outbox = self.uplink.status if self.uplink else None, self.client, self.outbox
        return (
            (link.state, link.requests, link.failures) if link is not None else None,
            client.login_needed if client is not None else None,
            outbox.storage_error,
            outbox.pending_count(),
            tuple(rec.activity.state for rec in outbox.activities()),
        )

    # ------------------------------------------------------------------ tasks

    async def _gps_task(self) -> None:
        if self.fix_stream is not None:
            stream = self.fix_stream()
        else:
            from tracker.gps.stream import open_fix_stream
            from tracker.gps.sysclock import synchronised_system_time

            gps = self.settings.gps
            live = gps.source != "replay" and gps.system_clock == "auto"
            stream = open_fix_stream(
                gps, self.settings.filters, clock=synchronised_system_time if live else None
            )
        await self.recorder.record(
            stream,
            before_each=self.activities.autostart,
            before_each_due=self.activities.autostart_due,
        )
        log.info("the fix stream ended (end of the replay)")
        if self.stop_on_stream_end:
            await self.activities.stop(Trigger.REPLAY_END)
        await asyncio.Event().wait()  # stay "done" without being restarted

    async def _state_task(self) -> None:
        await self.controls.show_forever(self.hardware, expires=self.recorder.gps_changes_in)

    async def _heart_rate_task(self) -> None:
        source = self.heart_rate
        if source is None:
            from tracker.bike.heart_rate.source import open_heart_rate_source
            from tracker.errors import ConfigError

            try:
                source = open_heart_rate_source(
                    self.settings.heart_rate,
                    self.recorder.gps_anchor,
                    clock=self.monotonic,
                    ride_clock=self.recorder.gps_now,  # a replayed strap keeps the ride's pace
                )
            except ConfigError as exc:
                # A wrong [heart_rate] device is no reason to stop recording the ride, and
                # restarting this task cannot fix the file: say it once, carry on without HR.
                log.error("heart rate disabled: bad configuration", problem=str(exc))
                self.supervisor.note_error("heart_rate", str(exc))
                return
            self.heart_rate = source
        if source is not None:
            await self.recorder.record_heart_rate(source)

    async def _prune_task(self) -> None:
        """Hourly: finished activities older than keep_days, or the oldest above 80 % of the
        size bound, go (a commit that meets a full file makes room by itself, at once)."""
        while True:
            await self.outbox.prune()
            await asyncio.sleep(PRUNE_INTERVAL_S)


async def _watchdog_task() -> None:
    from tracker.bike.watchdog import Watchdog

    dog = Watchdog()
    dog.ready()
    try:
        await dog.run()
        await asyncio.Event().wait()
    finally:
        dog.stopping()


def _build_gpx(points: Sequence[Point], title: str, hr: Sequence[HeartRateSample]) -> str:
    from tracker.mmt.gpx import build_gpx

    return build_gpx(points, title, hr)
