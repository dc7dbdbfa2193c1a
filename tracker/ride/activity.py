"""The life of one activity as a pure state machine: idle → recording → stopping → stopped.

Why a state machine of its own: a rider's press of the button, `tracker start/stop`, the first
fix (autostart) and the end of a replay all arrive from different tasks, and after a crash the
engine restarts from whatever state the disk holds. Keeping the legal moves in one pure place
means the engine, the outbox and the uplink cannot disagree about what "stopping" allows.

- ``IDLE``: no activity. ``start`` (button, command, autostart on the first fix) creates one.
- ``RECORDING``: fixes become points. ``stop`` (button, command, end of a replay) → ``STOPPING``.
  A service restart is *not* a stop: a recording activity stays recording across restarts.
- ``STOPPING``: no new points; the uplink still sends what waits, then ``stopActivity``.
- ``STOPPED``: the server has every point and has closed the activity.
- ``UPLOADED``: the server kept refusing the live stream, so the ride went up as one GPX file
  through ``uploadActivity`` (a ride recorded offline still streams live once the link is back:
  the live endpoints are idempotent, ``uploadActivity`` is not).
- ``DISCARDED``: stopped before a single point was recorded (a double press, a cold receiver):
  closed locally, never sent, so it cannot hold back the rides after it.
- ``REJECTED``: the server refused the GPX upload too (a 413, a 403): repeating it will not help.
  Its points stay on disk for `tracker export`.
- ``UNCONFIRMED``: the GPX upload's reply was lost. ``uploadActivity`` has no idempotency handle,
  so sending it again could make a second copy: it is not retried; the rider checks the website
  and can `tracker export` it.

Titles: every activity gets a unique title when it is created, persisted before the first
request. v3 offers no other idempotency handle: a retried ``startActivity`` after a lost reply
must carry the same title so the server appends to the activity it already made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum


class ActivityState(Enum):
    IDLE = "idle"
    RECORDING = "recording"
    STOPPING = "stopping"
    STOPPED = "stopped"
    UPLOADED = "uploaded"
    DISCARDED = "discarded"
    REJECTED = "rejected"
    UNCONFIRMED = "unconfirmed"


class Trigger(Enum):
    """Who asked for a start or a stop (logged, shown in status)."""

    BUTTON = "button"
    COMMAND = "command"
    AUTOSTART = "autostart"
    REPLAY_END = "replay_end"
    SHUTDOWN = "shutdown"


class Event(Enum):
    START = "start"
    STOP = "stop"
    STOP_CONFIRMED = "stop_confirmed"  # every point out and stopActivity answered
    UPLOAD_CONFIRMED = "upload_confirmed"  # the GPX fallback was accepted
    DISCARD = "discard"  # stopped with no point recorded: nothing to send
    UPLOAD_REFUSED = "upload_refused"  # the server refused the GPX fallback for good
    UPLOAD_LOST = "upload_lost"  # the GPX fallback's reply was lost: it may or may not exist


class InvalidTransition(ValueError):
    """An event that makes no sense in the current state (a bug, not a user error)."""


# (state, event) → next state. Anything absent is invalid; ``apply`` turns harmless repeats
# (start while recording, stop while idle) into no-ops instead.
_TRANSITIONS: dict[tuple[ActivityState, Event], ActivityState] = {
    (ActivityState.IDLE, Event.START): ActivityState.RECORDING,
    (ActivityState.RECORDING, Event.STOP): ActivityState.STOPPING,
    (ActivityState.STOPPING, Event.STOP_CONFIRMED): ActivityState.STOPPED,
    (ActivityState.STOPPING, Event.UPLOAD_CONFIRMED): ActivityState.UPLOADED,
    (ActivityState.STOPPED, Event.UPLOAD_CONFIRMED): ActivityState.UPLOADED,
    (ActivityState.STOPPING, Event.DISCARD): ActivityState.DISCARDED,
    (ActivityState.STOPPING, Event.UPLOAD_REFUSED): ActivityState.REJECTED,
    (ActivityState.STOPPED, Event.UPLOAD_REFUSED): ActivityState.REJECTED,
    (ActivityState.STOPPING, Event.UPLOAD_LOST): ActivityState.UNCONFIRMED,
    (ActivityState.STOPPED, Event.UPLOAD_LOST): ActivityState.UNCONFIRMED,
}

# Repeats that are answered "nothing to do" rather than treated as errors: a second press of
# `tracker start`, a stop when nothing records, a retried stop confirmation.
_NO_OPS: frozenset[tuple[ActivityState, Event]] = frozenset(
    {
        (ActivityState.RECORDING, Event.START),
        (ActivityState.IDLE, Event.STOP),
        (ActivityState.STOPPING, Event.STOP),
        (ActivityState.STOPPED, Event.STOP),
        (ActivityState.UPLOADED, Event.STOP),
        (ActivityState.STOPPED, Event.STOP_CONFIRMED),
        (ActivityState.UPLOADED, Event.UPLOAD_CONFIRMED),
        (ActivityState.DISCARDED, Event.STOP),
        (ActivityState.DISCARDED, Event.DISCARD),
        (ActivityState.REJECTED, Event.STOP),
        (ActivityState.UNCONFIRMED, Event.STOP),
    }
)

# A finished activity leaves the rider idle: a start from these creates a new activity.
FINISHED = frozenset(
    {
        ActivityState.STOPPED,
        ActivityState.UPLOADED,
        ActivityState.DISCARDED,
        ActivityState.REJECTED,
        ActivityState.UNCONFIRMED,
    }
)
# Finished with nothing left to keep: the server has the ride, or there was none. Only these may
# be pruned when the disk runs full (a refused or unconfirmed ride is the rider's only copy).
PRUNABLE = frozenset({ActivityState.STOPPED, ActivityState.UPLOADED, ActivityState.DISCARDED})
# Finished, but the server may not have the ride: its points stay on disk for `tracker export`.
NOT_ON_SERVER = frozenset(
    {ActivityState.DISCARDED, ActivityState.REJECTED, ActivityState.UNCONFIRMED}
)
# States in which the uplink still has work.
OPEN = frozenset({ActivityState.RECORDING, ActivityState.STOPPING})


def next_state(state: ActivityState, event: Event) -> ActivityState:
    """The state after ``event``; the same state for a harmless repeat; raises otherwise."""
    if state in FINISHED and event is Event.START:
        return ActivityState.RECORDING  # a new activity, see ``Activity.start_new``
    target = _TRANSITIONS.get((state, event))
    if target is not None:
        return target
    if (state, event) in _NO_OPS:
        return state
    raise InvalidTransition(f"{event.value} is not possible while {state.value}")


def button_event(state: ActivityState) -> Event:
    """A short press toggles: start when nothing records, stop while recording."""
    return Event.STOP if state is ActivityState.RECORDING else Event.START


def make_title(prefix: str, local_start: datetime, random_id: str) -> str:
    """A title no other activity of this installation will have.

    prefix + local start time (minutes) + a short random id: readable in the server's list, and
    unique even if the Pi's clock is wrong or two rides start in the same minute. ``random_id``
    comes from the caller (``secrets.token_hex(3)``) so this function stays pure.
    """
    if not random_id or not random_id.isalnum():
        raise ValueError("random_id must be a non-empty alphanumeric string")
    stamp = local_start.strftime("%Y-%m-%d %H:%M")
    prefix = prefix.strip()
    return f"{prefix} {stamp} {random_id}" if prefix else f"{stamp} {random_id}"


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity as the engine and the outbox see it (counters live in the outbox)."""

    local_id: int
    title: str
    state: ActivityState
    remote_id: int | None = None
    upload_only: bool = False  # live streaming given up: send as one GPX when stopped

    def apply(self, event: Event) -> Activity:
        if self.state in FINISHED and event is Event.START:
            raise InvalidTransition("a finished activity cannot restart: create a new one")
        return replace(self, state=next_state(self.state, event))

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def needs_stop_request(self) -> bool:
        """STOPPING and streamed live: stopActivity once every point is out."""
        return self.state is ActivityState.STOPPING and not self.upload_only

    @property
    def needs_upload(self) -> bool:
        """Finished recording but never streamable: the GPX fallback is due."""
        return self.upload_only and self.state in (ActivityState.STOPPING, ActivityState.STOPPED)
