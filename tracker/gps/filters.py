"""Which fixes the sampler may trust as positions. Pure; one verdict per fix, counted by reason.

Reasons (the keys of :attr:`FixFilter.drops`):

* ``no_fix``: the receiver said it has no position (mode 0/1), or the position is not finite.
* ``hdop``: horizontal dilution of precision above ``max_hdop`` (bad satellite geometry).
* ``repeated``: the same epoch time as the last accepted fix (a duplicated burst).
* ``backwards``: a time before the last accepted fix (a receiver glitch, a stale sentence).
* ``outlier``: the jump from the last accepted fix implies more than ``max_speed_mps``.
* ``time``: an implausible time. With a reference clock (``clock``: the system clock when the
  kernel says it is synchronised, else None), more than ``clock_tolerance_s`` from it. Without
  one (a recording, an unsynchronised Pi), more than ``max_gap_s`` after the last accepted fix.
  One checksum-valid epoch an hour ahead would otherwise be accepted, and every later fix would
  look older than it (the engine skips fixes older than the last one it recorded).

The continuity checks (``backwards``, ``outlier``, ``time``) compare with the last *accepted*
fix. If that one was itself wrong, or the receiver's time really moved (a reset, a new session in
a log, a train ride with the tracker off), every later fix would be rejected; so after
``reanchor_after`` consecutive continuity rejections that agree with each other (each one
plausible from the one before), the next such fix is accepted as the new anchor (counted as
``reanchored``). A receiver whose time keeps disagreeing with the reference clock is then
believed: the offset is kept, and only a fix off *that* is a ``time`` drop again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tracker.geo import haversine_m
from tracker.model import Fix, FixMode

REASONS = ("no_fix", "hdop", "repeated", "backwards", "outlier", "time")
CONTINUITY = frozenset({"backwards", "outlier", "time"})

# Without a clock: a gap longer than this between accepted fixes is a time outlier until the
# fixes after it confirm it. Real recordings pause for up to ~21 min (NmeaSampleData: 798 and
# 1250 s); a receiver off for longer costs ``reanchor_after`` fixes when it comes back.
MAX_GAP_S = 1800.0
# With a synchronised clock: how far a fix may be from it. Covers the decoder's one-epoch delay
# and a kernel tty buffer of old bursts read at start-up (seconds), not a wrong hour.
CLOCK_TOLERANCE_S = 120.0

Clock = Callable[[], float | None]


class FixFilter:
    """``accept(fix)`` → None to keep it, else the reason it was dropped."""

    def __init__(
        self,
        max_hdop: float,
        max_speed_mps: float,
        *,
        reanchor_after: int = 5,
        clock: Clock | None = None,
        clock_tolerance_s: float = CLOCK_TOLERANCE_S,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self.max_hdop = max_hdop
        self.max_speed_mps = max_speed_mps
        self.reanchor_after = reanchor_after
        self.clock = clock
        self.clock_tolerance_s = clock_tolerance_s
        self.max_gap_s = max_gap_s
        self.drops: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.accepted = 0
        self.reanchored = 0
        self.clock_offset_s = 0.0  # receiver time minus reference clock, once believed
        self.last_reference: float | None = None  # the clock reading of the last verdict
        self._last: Fix | None = None
        self._run: Fix | None = None  # the last of the current run of continuity rejections
        self._continuity_rejects = 0

    @property
    def anchor(self) -> Fix | None:
        """The last accepted fix: what continuity is judged against."""
        return self._last

    def accept(self, fix: Fix) -> str | None:
        reason = self._verdict(fix)
        if reason is None:
            ref = self.last_reference
            if ref is not None and abs(fix.unix - ref) <= self.clock_tolerance_s:
                self.clock_offset_s = 0.0  # the receiver agrees with the clock (again)
            self._last = fix
            self.accepted += 1
            self._continuity_rejects = 0
            self._run = None
        else:
            self.drops[reason] += 1
        return reason

    def reset(self) -> None:
        """Forget the anchor (a new activity, another receiver)."""
        self._last = None
        self._run = None
        self._continuity_rejects = 0

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "reanchored": self.reanchored, **self.drops}

    def _verdict(self, fix: Fix) -> str | None:
        if fix.mode < FixMode.FIX_2D or not (math.isfinite(fix.lat) and math.isfinite(fix.lon)):
            return "no_fix"
        if fix.hdop is not None and fix.hdop > self.max_hdop:
            return "hdop"
        reference: float | None = self.clock() if self.clock is not None else None
        self.last_reference = reference
        off_clock = reference is not None and not self._near_clock(fix.unix, reference)
        last = self._last
        if last is None:
            return self._continuity("time", fix, reference) if off_clock else None
        dt = fix.unix - last.unix
        if dt == 0:
            return "repeated"
        if off_clock:
            return self._continuity("time", fix, reference)
        if dt < 0:
            return self._continuity("backwards", fix, reference)
        if reference is None and dt > self.max_gap_s:
            return self._continuity("time", fix, reference)
        if haversine_m(last.lat, last.lon, fix.lat, fix.lon) / dt > self.max_speed_mps:
            return self._continuity("outlier", fix, reference)
        return None

    def _near_clock(self, unix: float, reference: float) -> bool:
        tolerance = self.clock_tolerance_s
        return (abs(unix - reference) <= tolerance
                or abs(unix - reference - self.clock_offset_s) <= tolerance)  # fmt: skip

    def _continuity(self, reason: str, fix: Fix, reference: float | None) -> str | None:
        """Count a continuity rejection; after enough that agree, ``fix`` is the new anchor."""
        run = self._run
        if run is None or not self._follows(run, fix):
            self._continuity_rejects = 0  # a new run starts with this fix
        self._run = fix
        self._continuity_rejects += 1
        if self._continuity_rejects > self.reanchor_after:
            self.reanchored += 1
            if reference is not None and not self._near_clock(fix.unix, reference):
                self.clock_offset_s = fix.unix - reference
            return None
        return reason

    def _follows(self, before: Fix, fix: Fix) -> bool:
        """``fix`` is a plausible successor of ``before`` (the run describes one real track)."""
        dt = fix.unix - before.unix
        if dt <= 0 or dt > self.max_gap_s:
            return False
        return haversine_m(before.lat, before.lon, fix.lat, fix.lon) / dt <= self.max_speed_mps
