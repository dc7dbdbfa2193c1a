"""What the rider needs to know at a glance, as one value the LEDs and `tracker status` share.

The engine computes it from its own state (receiver, fix, activity, link, login) with
:func:`device_state`; the GPIO adapter turns it into a blink pattern. Pure: no I/O.
"""

from __future__ import annotations

from enum import Enum


class DeviceState(Enum):
    """Ordered from most to least urgent: when several apply, the first one is shown."""

    ERROR = "error"  # storage failing, a task crashing: look at the logs
    LOGIN_NEEDED = "login_needed"  # the server refused our login: run `tracker login`
    NO_RECEIVER = "no_receiver"  # no GPS device found / it was unplugged
    SEARCHING = "searching"  # receiver talks, no position fix yet
    RECORDING_OFFLINE = "recording_offline"  # recording, points waiting for the network
    RECORDING_LIVE = "recording_live"  # recording and everything is uploaded
    IDLE_FIX = "idle_fix"  # a fix, no activity running: press the button to start


def device_state(
    *,
    error: bool,
    login_needed: bool,
    receiver_present: bool,
    has_fix: bool,
    recording: bool,
    points_waiting: int,
    link_up: bool,
) -> DeviceState:
    """The single state to show, most urgent first."""
    if error:
        return DeviceState.ERROR
    if login_needed:
        return DeviceState.LOGIN_NEEDED
    if not receiver_present:
        return DeviceState.NO_RECEIVER
    if recording:
        if points_waiting > 0 and not link_up:
            return DeviceState.RECORDING_OFFLINE
        return DeviceState.RECORDING_LIVE
    if not has_fix:
        return DeviceState.SEARCHING
    return DeviceState.IDLE_FIX
