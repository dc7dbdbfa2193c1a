"""When to refresh the access token: by the clock that received it, never by a wall clock.

A refresh is not free with v3: the refresh token rotates, so a refresh whose reply is lost logs
the rider out. A refresh must therefore happen only when it is really due, and a wall clock cannot
say so: a Pi has no RTC and may boot at 1970 or at its last shutdown, and GPS time can jump (one
bad epoch, a week-number rollover). So:

* a pair received by this process is judged on the **monotonic** clock read when it arrived:
  exact, whatever the wall clock does;
* a pair read from disk (another process, an earlier boot) has no reading of ours: its expiry is
  unknown, the token is used, and the first 401 refreshes it.

The wall clock is only stamped into the stored record (``received_at``/``expires_at``) so that
`tracker status` can show an expiry time; nothing here decides on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

WallClock = Callable[[], float | None]
"""Returns the current UTC time in unix seconds when it is trusted (GPS, or a plausible system
clock), else None. Used for display only."""

Monotonic = Callable[[], float]

# A system clock before this instant is not plausible (a Pi without RTC boots at 1970 or at its
# last shutdown); 2025-01-01T00:00:00Z.
PLAUSIBLE_AFTER: Final = 1_735_689_600.0
# A stored expiry further ahead than the token's lifetime plus this margin means a clock was
# wrong when the pair arrived or is wrong now (`tracker status` then shows "unknown").
MAX_CLOCK_SKEW_S: Final = 300.0
DEFAULT_LEEWAY_S: Final = 60.0


def system_clock() -> float | None:
    """The system clock, when it is plausible (see :data:`PLAUSIBLE_AFTER`)."""
    now = time.time()
    return now if now >= PLAUSIBLE_AFTER else None


def leeway_for(expires_in: float | None, leeway: float) -> float:
    """Refresh this many seconds before expiry: ``leeway``, but at most a quarter of the life
    (a 30 s test token must not look expired the moment it arrives)."""
    if expires_in is None:
        return leeway
    return min(leeway, expires_in / 4)


def number(value: object) -> float | None:
    """A lifetime field as a float (servers send ints, floats or numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Lifetime:
    """How long the current access token is valid, and when this process received it.

    ``mono_received`` is a monotonic reading, set only for a pair received by this process.
    ``expires_at`` is the wall-clock stamp stored for display, never used to decide.
    """

    expires_in: float | None = None
    expires_at: float | None = None
    mono_received: float | None = None


class RefreshPolicy:
    """Knows the current pair's lifetime and says whether a refresh is due."""

    def __init__(
        self, *, monotonic: Monotonic = time.monotonic, leeway: float = DEFAULT_LEEWAY_S
    ) -> None:
        self.monotonic = monotonic
        self.leeway = leeway
        self.lifetime = Lifetime()

    def received(self, expires_in: object, expires_at: object = None) -> None:
        """A pair just arrived in this process: start its monotonic countdown."""
        self.lifetime = Lifetime(number(expires_in), number(expires_at), self.monotonic())

    def adopted(self, expires_in: object, expires_at: object = None) -> None:
        """A pair read from disk: its age is unknown to this process."""
        self.lifetime = Lifetime(number(expires_in), number(expires_at), None)

    def seconds_left(self) -> float | None:
        """Seconds until the access token expires, or None when that cannot be known."""
        life = self.lifetime
        if life.expires_in is None or life.mono_received is None:
            return None
        return life.mono_received + life.expires_in - self.monotonic()

    def due(self) -> bool:
        left = self.seconds_left()
        return left is not None and left <= leeway_for(self.lifetime.expires_in, self.leeway)
