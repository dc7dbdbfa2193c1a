"""The uplink's declared retry policy: exponential backoff with jitter, capped, never giving up.

Why not only stamina: stamina's policies end after a number of attempts or a deadline, and ours
must *never* give up while points wait, must honour a server's ``Retry-After``, and must be
testable with a fake clock. The policy is a value (the numbers are in one place, shown in the
docs) and the delay is a pure function of the attempt number and a random draw the caller makes.

Delay for attempt n (1-based) = min(cap, initial · multiplier^(n-1)) scaled into
[1 - jitter, 1] by the draw ("equal jitter": never zero, so a fleet of trackers coming back from
the same outage spreads out instead of hammering the server together), and never less than the
server's Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass


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
