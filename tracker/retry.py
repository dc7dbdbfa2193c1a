"""The one retry policy every loop that waits and tries again uses: uplink, reconnects, supervisor.

A policy is a value (the numbers in one place, shown in the docs); a :class:`Backoff` is one
loop's running state under it (failures in a row, the next wait) and waits with the ``sleep`` the
loop was given, so tests drive every retry loop with a fake clock.

Delay for attempt n (1-based) = min(cap, initial · multiplier^(n-1)) scaled into
[1 - jitter, 1] by a uniform draw ("equal jitter": never zero, so a fleet of trackers coming back
from the same outage spreads out instead of hammering the server together), and never less than
the server's Retry-After.

Why not stamina (it was declared once and never used): its policies end after a number of
attempts or a deadline and drive the loop themselves; ours must never give up while points wait,
honour a server's Retry-After, report each failure to the loop's own status, and run on an
injected clock. Pure: no I/O, no asyncio import (the caller hands in its ``sleep``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 1.0
    multiplier: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.5  # fraction of the delay that is random

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.multiplier < 1 or self.max_s < self.initial_s:
            raise ValueError("need initial_s > 0, multiplier >= 1, max_s >= initial_s")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, attempt: int, draw: float, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``; ``draw`` is uniform in [0, 1)."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        exponent = min(attempt - 1, 64)  # keep the power finite; the cap applies long before
        base = min(self.max_s, self.initial_s * self.multiplier**exponent)
        wait = base * (1 - self.jitter * draw)
        if retry_after is not None and retry_after > wait:
            # The server said when; but not longer than our own cap (a broken header must not
            # park the tracker for a day).
            wait = min(retry_after, max(self.max_s, wait))
        return wait


# The declared policies. Reconnects to local devices need no jitter: there is one receiver
# and one strap, nobody to stampede; the uplink's cap comes from [uplink] max_backoff_s.
RECONNECT = RetryPolicy(initial_s=0.25, multiplier=2.0, max_s=10.0, jitter=0.0)
STRAP_RECONNECT = RetryPolicy(initial_s=1.0, multiplier=2.0, max_s=60.0, jitter=0.0)
SUPERVISOR = RetryPolicy(initial_s=1.0, multiplier=2.0, max_s=30.0, jitter=0.0)


def uplink_policy(max_backoff_s: float) -> RetryPolicy:
    return RetryPolicy(initial_s=1.0, max_s=max_backoff_s)


class Backoff:
    """One retrying loop's state: failures in a row and the wait before the next try.

    ``failure()`` counts a failed try and returns the wait; ``wait()`` does that and sleeps;
    ``reset()`` after a success starts again from the policy's initial delay.
    """

    __slots__ = ("_draw", "_sleep", "attempt", "policy")

    def __init__(
        self, policy: RetryPolicy, sleep: Sleep, *, draw: Callable[[], float] | None = None
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._draw = draw or random.Random().random
        self.attempt = 0  # failures since the last success

    def failure(self, retry_after: float | None = None) -> float:
        self.attempt += 1
        return self.policy.delay(self.attempt, self._draw(), retry_after)

    async def wait(self, retry_after: float | None = None) -> float:
        delay = self.failure(retry_after)
        await self._sleep(delay)
        return delay

    def reset(self) -> None:
        self.attempt = 0
