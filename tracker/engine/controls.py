"""What the rider and the shell do to the service, and what the LEDs show back.

- **Button.** A short press toggles the activity (:meth:`Activities.toggle`); a long press does
  ``[button] long_press``: ``shutdown`` (stop the ride, commit, power off safely), ``upload``
  (stop the ride so it goes up) or nothing.
- **Control socket.** ``status``, ``start`` and ``stop`` from `tracker status|start|stop`.
- **LEDs.** The status snapshot's ``device_state``, shown whenever it changes. Nothing polls:
  whoever changes an input of the state (a fix, a commit, the uplink, a start or stop, a task
  failing) calls :meth:`Controls.changed`, and :meth:`Controls.show_forever` looks again once,
  however many calls came meanwhile. An input that changes with time alone (the fixes' own
  "has fix" going stale) gives the time it expires, and the LEDs look again then. The blink
  patterns themselves run in gpiozero's threads.

Presses arrive as gpiozero callbacks in the event loop; the work they start runs as background
tasks kept here until done (an unreferenced task may be garbage-collected mid-flight).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Protocol

from tracker.bike.device_state import DeviceState
from tracker.config import ButtonSettings
from tracker.engine.activities import Activities
from tracker.engine.status import JsonObject, ServiceStatus
from tracker.logs import get_logger
from tracker.ride.activity import Trigger

if TYPE_CHECKING:
    from tracker.bike.shutdown import SafeShutdown

log = get_logger("engine")

PressCallback = Callable[[], object]


class Device(Protocol):
    """What the engine needs of the button and LEDs (``tracker.bike.gpio.Hardware``)."""

    def on_short_press(self, callback: PressCallback) -> None: ...
    def on_long_press(self, callback: PressCallback) -> None: ...
    def show(self, state: DeviceState) -> None: ...
    def show_shutting_down(self) -> None: ...
    def close(self) -> None: ...


class Controls:
    """Turns presses and socket commands into activity events; drives the LEDs."""

    def __init__(
        self,
        activities: Activities,
        button: ButtonSettings,
        *,
        status: Callable[[], ServiceStatus],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        self.activities = activities
        self.button = button
        self._status = status
        self._flush = flush  # commit what is staged (before a power-off)
        self._background: set[asyncio.Future[object]] = set()
        self._safe_shutdown: SafeShutdown | None = None
        self.shown_state: DeviceState | None = None
        self.looks = 0  # how often the state was computed (each one a full status)
        self._changed = asyncio.Event()

    # -- the button --------------------------------------------------------------------------

    def attach(self, device: Device) -> None:
        device.on_short_press(self.on_short_press)
        device.on_long_press(lambda: self.on_long_press(device))

    def on_short_press(self) -> None:
        self._spawn(self.activities.toggle(Trigger.BUTTON))

    def on_long_press(self, device: Device | None = None) -> None:
        action = self.button.long_press
        log.info("long press", action=action)
        if action == "shutdown":
            from tracker.bike.shutdown import SafeShutdown

            if device is not None:
                device.show_shutting_down()
            # One instance for the life of the service: it ignores a second call, so a rider
            # holding the button twice does not power off twice.
            if self._safe_shutdown is None:
                self._safe_shutdown = SafeShutdown.from_settings(self.button)
                self._safe_shutdown.set_flush(self._stop_for_shutdown)
            self._spawn(self._safe_shutdown())
        elif action == "upload":
            self._spawn(self.activities.stop(Trigger.BUTTON))

    async def _stop_for_shutdown(self) -> None:
        await self.activities.stop(Trigger.SHUTDOWN)
        await self._flush()

    def _spawn(self, work: Coroutine[object, object, object]) -> None:
        task: asyncio.Future[object] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the control socket ------------------------------------------------------------------

    async def command(self, cmd: str, request: JsonObject) -> JsonObject:
        """The reply to one control-socket request (see tracker.engine.control_socket)."""
        if cmd == "status":
            return {"ok": True, "status": self._status().as_json()}
        if cmd == "start":
            rec, started = await self.activities.start(Trigger.COMMAND)
            return {"ok": True, "started": started, "activity": rec.activity.title}
        if cmd == "stop":
            stopped = await self.activities.stop(Trigger.COMMAND)
            return {
                "ok": True,
                "stopped": stopped is not None,
                "activity": stopped.activity.title if stopped else None,
            }
        return {"ok": False, "error": f"unknown command {cmd!r} (known: status, start, stop)"}

    # -- the LEDs ----------------------------------------------------------------------------

    def changed(self) -> None:
        """An input of the device state may have changed: the LEDs look again, soon and once."""
        self._changed.set()

    async def show_forever(
        self, device: Device | None, *, expires: Callable[[], float | None] = lambda: None
    ) -> None:
        """The status's device state, on the LEDs when it changed: now, then after each
        :meth:`changed`, or when ``expires()`` (seconds until an input changes with time alone,
        None: none does) runs out."""
        while True:
            self._changed.clear()
            state = self._status().device_state
            self.looks += 1
            if device is not None and state is not self.shown_state:
                device.show(state)
            self.shown_state = state
            timeout = expires()
            if timeout is None:
                await self._changed.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()
