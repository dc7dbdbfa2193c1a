"""The start and stop use cases: whoever asks (button, `tracker start|stop`, autostart, the end of a
replay, the shutdown press), a start or a stop goes through here, one at a time.

The legal moves are the pure state machine's (:mod:`tracker.ride.activity`): a start while
recording answers the current activity, a stop while idle does nothing, a short press is
:func:`~tracker.ride.activity.button_event` of the current state.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime

from tracker.config import ActivitySettings
from tracker.engine.recorder import Recorder
from tracker.logs import get_logger
from tracker.ride.activity import ActivityState, Event, Trigger, button_event, make_title
from tracker.storage.outbox import ActivityRecord, Outbox

log = get_logger("engine")


class Activities:
    """Starts and stops activities; ``changed`` is called after each (to wake the uplink)."""

    def __init__(
        self,
        outbox: Outbox,
        recorder: Recorder,
        settings: ActivitySettings,
        *,
        changed: Callable[[], None],
    ) -> None:
        self.outbox = outbox
        self.recorder = recorder
        self.settings = settings
        self._changed = changed
        self._lock = asyncio.Lock()
        # Autostart means "start riding when the tracker comes up with a fix", not "restart the
        # moment the rider stops": after a stop only the button or a command starts.
        self.autostart_armed = settings.autostart

    def current(self) -> ActivityRecord | None:
        return self.outbox.current()

    def current_title(self) -> str | None:
        rec = self.current()
        return rec.activity.title if rec else None

    async def start(self, trigger: Trigger) -> tuple[ActivityRecord, bool]:
        """Start a new activity; (the recording activity, whether it is new)."""
        async with self._lock:
            rec = self.current()
            if rec is not None:
                return rec, False
            title = make_title(
                self.settings.title_prefix, datetime.now().astimezone(), secrets.token_hex(3)
            )
            self.recorder.begin()
            rec = await self.outbox.create_activity(title)
            log.info("activity started", title=title, trigger=trigger.value)
            self._changed()
            return rec, True

    async def stop(self, trigger: Trigger) -> ActivityRecord | None:
        """Stop the recording activity: the last point out of the sampler, state STOPPING, on
        disk in the same transaction. None when nothing was recording."""
        async with self._lock:
            rec = self.current()
            if rec is None:
                return None
            self.recorder.flush_pending()  # every fix received before the stop is in the ride
            self.recorder.finish(rec)
            await self.outbox.update_activity(rec.activity.apply(Event.STOP))
            self.autostart_armed = False
            log.info(
                "activity stopped; sending what waits, then stopActivity",
                title=rec.activity.title,
                trigger=trigger.value,
                waiting=self.outbox.pending_count(rec.local_id),
            )
            self._changed()
            return rec

    async def toggle(self, trigger: Trigger) -> None:
        """A short press: start when nothing records, stop while recording."""
        rec = self.current()
        if button_event(rec.activity.state if rec else ActivityState.IDLE) is Event.START:
            await self.start(trigger)
        else:
            await self.stop(trigger)

    async def autostart(self) -> None:
        """A fix arrived: start the first ride if ``[activity] autostart`` is on and armed."""
        if self.autostart_due():
            await self.start(Trigger.AUTOSTART)

    def autostart_due(self) -> bool:
        """Would :meth:`autostart` start a ride now (else a fix needs no task to wait for it)."""
        return self.autostart_armed and self.current() is None
