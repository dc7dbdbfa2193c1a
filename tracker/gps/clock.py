"""Which clock to believe for "now": the rule, pure (the kernel query is in :mod:`.sysclock`).

A Raspberry Pi has no real-time clock: it boots at 1970 or at the time it was last shut down
(fake-hwclock) until NTP or chrony sets it. The kernel knows whether that has happened: its NTP
status (``adjtimex``) carries ``STA_UNSYNC`` until a time daemon has disciplined the clock, and
the call returns ``TIME_ERROR`` while the clock is unsynchronised. The rule:

1. the system clock when the kernel says it is synchronised;
2. else GPS time (the last accepted fix, carried forward on the monotonic clock);
3. else the system clock if it is at least plausible (after :data:`PLAUSIBLE_AFTER`);
4. else unknown (None): callers must not act on a time they cannot trust.
"""

from __future__ import annotations

from typing import Final

# adjtimex(2): the return value for an unsynchronised clock, and the status bit that says so.
TIME_ERROR: Final = 5
STA_UNSYNC: Final = 0x0040
# A system clock before this instant cannot be right (2025-01-01T00:00:00Z, as the OAuth client's).
PLAUSIBLE_AFTER: Final = 1_735_689_600.0


def kernel_says_synchronised(state: int, status: int) -> bool:
    """What adjtimex's return value (``state``) and ``status`` bits say about the clock."""
    return state != TIME_ERROR and not status & STA_UNSYNC


def trusted_time(
    *, system_now: float, system_synchronised: bool | None, gps_now: float | None
) -> float | None:
    """"Now" by the rule above. ``system_synchronised`` None = the kernel could not be asked."""
    if system_synchronised:
        return system_now
    if gps_now is not None:
        return gps_now
    return system_now if system_now >= PLAUSIBLE_AFTER else None


def gps_now(last_fix_unix: float | None, last_fix_mono: float | None, mono_now: float
            ) -> float | None:  # fmt: skip
    """GPS time now: the last fix's time plus the monotonic time since it arrived."""
    if last_fix_unix is None or last_fix_mono is None:
        return None
    return last_fix_unix + (mono_now - last_fix_mono)
