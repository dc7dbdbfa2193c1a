"""Which fixes the sampler may trust as positions. Pure; one verdict per fix, counted by reason.

Reasons (the keys of :attr:`FixFilter.drops`):

* ``no_fix``: the receiver said it has no position (mode 0/1), or the position is not finite.
* ``hdop``: horizontal dilution of precision above ``max_hdop`` (bad satellite geometry).
* ``repeated``: the same epoch time as the last accepted fix (a duplicated burst).
* ``backwards``: a time before the last accepted fix (a receiver glitch, a stale sentence).
* ``outlier``: the jump from the last accepted fix implies more than ``max_speed_mps``.

The continuity checks (``backwards``, ``outlier``) compare with the last *accepted* fix. If that
one was itself wrong, or the receiver really moved on (a new session in a log, a train ride with
the tracker off), every later fix would be rejected; so after ``reanchor_after`` consecutive
continuity rejections the filter accepts the next good fix as a new anchor (counted as
``reanchored``).
"""

from __future__ import annotations

import math

from tracker.geo import haversine_m
from tracker.model import Fix, FixMode

REASONS = ("no_fix", "hdop", "repeated", "backwards", "outlier")


class FixFilter:
    """``accept(fix)`` → None to keep it, else the reason it was dropped."""

    def __init__(self, max_hdop: float, max_speed_mps: float, *, reanchor_after: int = 5) -> None:
        self.max_hdop = max_hdop
        self.max_speed_mps = max_speed_mps
        self.reanchor_after = reanchor_after
        self.drops: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.accepted = 0
        self.reanchored = 0
        self._last: Fix | None = None
        self._continuity_rejects = 0

    def accept(self, fix: Fix) -> str | None:
        reason = self._verdict(fix)
        if reason is None:
            self._last = fix
            self.accepted += 1
            self._continuity_rejects = 0
        else:
            self.drops[reason] += 1
        return reason

    def reset(self) -> None:
        """Forget the anchor (a new activity, another receiver)."""
        self._last = None
        self._continuity_rejects = 0

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "reanchored": self.reanchored, **self.drops}

    def _verdict(self, fix: Fix) -> str | None:
        if fix.mode < FixMode.FIX_2D or not (math.isfinite(fix.lat) and math.isfinite(fix.lon)):
            return "no_fix"
        if fix.hdop is not None and fix.hdop > self.max_hdop:
            return "hdop"
        last = self._last
        if last is None:
            return None
        dt = fix.unix - last.unix
        if dt == 0:
            return "repeated"
        if dt < 0:
            return self._continuity("backwards")
        speed = haversine_m(last.lat, last.lon, fix.lat, fix.lon) / dt
        if speed > self.max_speed_mps:
            return self._continuity("outlier")
        return None

    def _continuity(self, reason: str) -> str | None:
        self._continuity_rejects += 1
        if self._continuity_rejects > self.reanchor_after:
            self.reanchored += 1
            return None
        return reason
