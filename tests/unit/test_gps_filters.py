"""FixFilter: every drop has a reason and a counter; the anchor recovers from a bad fix."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tracker.gps.filters import FixFilter
from tracker.gps.ring import RingBuffer
from tracker.model import Fix, FixMode


def fix(t: float, lat: float = 47.0, lon: float = -3.0, *, mode: FixMode = FixMode.FIX_3D,
        hdop: float | None = 1.0) -> Fix:  # fmt: skip
    return Fix(datetime.fromtimestamp(t, UTC), t, lat, lon, mode, hdop=hdop)


def test_keeps_good_fixes() -> None:
    f = FixFilter(max_hdop=5, max_speed_mps=50)
    assert [f.accept(fix(t, 47 + t * 1e-5)) for t in range(5)] == [None] * 5
    assert f.accepted == 5


def test_drop_reasons_are_counted() -> None:
    f = FixFilter(max_hdop=5, max_speed_mps=50)
    assert f.accept(fix(0)) is None
    assert f.accept(fix(1, math.nan, math.nan, mode=FixMode.NO_FIX)) == "no_fix"
    assert f.accept(fix(2, hdop=9.0)) == "hdop"
    assert f.accept(fix(0)) == "repeated"
    assert f.accept(fix(-5)) == "backwards"
    assert f.accept(fix(3, 48.0)) == "outlier"  # 111 km in 3 s
    assert f.accept(fix(4, 47.0001)) is None  # 11 m in 4 s
    assert f.drops == {"no_fix": 1, "hdop": 1, "repeated": 1, "backwards": 1, "outlier": 1,
                       "time": 0}  # fmt: skip
    assert f.as_dict()["accepted"] == 2


def test_bad_anchor_is_replaced_after_consistent_rejections() -> None:
    # The first fix is the outlier: later good fixes must not be rejected forever.
    f = FixFilter(max_hdop=5, max_speed_mps=50, reanchor_after=3)
    f.accept(fix(0, 10.0))
    verdicts = [f.accept(fix(t, 47 + t * 1e-5)) for t in range(1, 8)]
    assert verdicts[:3] == ["outlier"] * 3
    assert verdicts[3:] == [None] * 4
    assert f.reanchored == 1


def test_time_backwards_session_recovers() -> None:
    f = FixFilter(max_hdop=5, max_speed_mps=50, reanchor_after=2)
    f.accept(fix(1000))
    verdicts = [f.accept(fix(t)) for t in (10, 11, 12, 13)]
    assert verdicts == ["backwards", "backwards", None, None]


T0 = 1_773_568_800.0  # 2026-03-15T10:00:00Z


def ride(seconds: range, *, offset: float = 0.0) -> list[Fix]:
    """A cyclist at ~5 m/s heading north, one fix a second, the receiver's clock ``offset``."""
    return [fix(T0 + s + offset, 47.0 + s * 4.5e-5) for s in seconds]


class FakeClock:
    """The synchronised system clock: the true time of the fix being judged (set per fix)."""

    def __init__(self) -> None:
        self.now: float | None = None

    def __call__(self) -> float | None:
        return self.now


def run(f: FixFilter, fixes: list[Fix], truth: list[float] | None = None,
        clock: FakeClock | None = None) -> list[str | None]:  # fmt: skip
    verdicts = []
    for i, x in enumerate(fixes):
        if clock is not None and truth is not None:
            clock.now = truth[i]
        verdicts.append(f.accept(x))
    return verdicts


@pytest.mark.parametrize("synchronised", [False, True])
def test_one_epoch_an_hour_ahead_is_dropped_and_counted(synchronised: bool) -> None:
    # Issue 14: one checksum-valid epoch an hour ahead among 98 good ones. It used to be kept,
    # so every later fix looked older than it (the engine skipped 98 of 98 as stale).
    good = ride(range(99))
    bad = fix(good[49].unix + 3600, good[49].lat)
    fixes = [*good[:50], bad, *good[50:98]]
    truth = [x.unix for x in good[:50]] + [good[49].unix + 0.5] + [x.unix for x in good[50:98]]
    clock = FakeClock() if synchronised else None
    f = FixFilter(max_hdop=5, max_speed_mps=50, clock=clock)
    verdicts = run(f, fixes, truth, clock)
    assert verdicts.count(None) == 98
    assert verdicts[50] == "time"
    assert f.drops["time"] == 1
    assert sum(f.drops.values()) == 1
    assert f.reanchored == 0


def test_a_synchronised_clock_catches_a_smaller_leap_the_gap_rule_allows() -> None:
    good = ride(range(20))
    bad = fix(good[9].unix + 600, good[9].lat)  # 10 minutes ahead: a plausible gap in a log
    fixes = [*good[:10], bad, *good[10:]]
    truth = [x.unix for x in fixes]
    truth[10] = good[9].unix + 0.5
    clock = FakeClock()
    f = FixFilter(max_hdop=5, max_speed_mps=50, clock=clock)
    assert run(f, fixes, truth, clock).count(None) == 20
    assert f.drops["time"] == 1
    offline = FixFilter(max_hdop=5, max_speed_mps=50)
    assert offline.accept(good[9]) is None
    assert offline.accept(bad) is None  # without a clock, 10 minutes is a pause in the log


def test_a_first_fix_far_from_the_synchronised_clock_is_not_the_anchor() -> None:
    clock = FakeClock()
    clock.now = T0
    f = FixFilter(max_hdop=5, max_speed_mps=50, clock=clock)
    assert f.accept(fix(T0 + 3600)) == "time"
    assert f.accept(fix(T0)) is None
    assert f.anchor is not None
    assert f.anchor.unix == T0


@pytest.mark.parametrize("jump_s", [86_400.0, -86_400.0, 7200.0])
def test_a_real_jump_of_time_reanchors_after_n_consistent_fixes(jump_s: float) -> None:
    # A receiver reset (or a new session in a log): its time really moved. The first
    # reanchor_after fixes of the new time are dropped, then every later one is kept.
    before = ride(range(30))
    after = ride(range(30, 130), offset=jump_s)
    f = FixFilter(max_hdop=5, max_speed_mps=50, reanchor_after=3)
    verdicts = run(f, before + after)
    assert verdicts[:30] == [None] * 30
    expected = "backwards" if jump_s < 0 else "time"
    assert verdicts[30:33] == [expected] * 3
    assert verdicts[33:] == [None] * 97
    assert f.reanchored == 1
    assert f.anchor == after[-1]


def test_a_receiver_off_a_synchronised_clock_is_believed_after_n_fixes() -> None:
    # Its positions are good; after reanchor_after consistent fixes the offset is kept (the
    # ride is recorded on the receiver's time), and a fix off *that* is an outlier again.
    fixes = ride(range(40), offset=3600.0)
    truth = [x.unix - 3600.0 for x in fixes]
    clock = FakeClock()
    f = FixFilter(max_hdop=5, max_speed_mps=50, reanchor_after=3, clock=clock)
    verdicts = run(f, fixes, truth, clock)
    assert verdicts == ["time"] * 3 + [None] * 37
    assert f.clock_offset_s == pytest.approx(3600.0)
    clock.now = truth[-1] + 1
    assert f.accept(fix(fixes[-1].unix + 7201, fixes[-1].lat)) == "time"  # off both
    assert f.accept(fix(fixes[-1].unix - 3599, fixes[-1].lat)) == "backwards"  # one glitch
    assert f.clock_offset_s == pytest.approx(3600.0)
    assert f.accept(fix(fixes[-1].unix + 1, fixes[-1].lat)) is None
    # Once its fixes agree with the clock again (a real resync, confirmed), the offset goes.
    back = ride(range(100, 110))
    truth = [x.unix for x in back]
    assert run(f, back, truth, clock) == ["backwards"] * 3 + [None] * 7
    assert f.clock_offset_s == 0.0


def test_scattered_outliers_never_become_the_anchor() -> None:
    # Rejections that do not agree with each other are not a "real move": no re-anchoring.
    good = ride(range(200))
    fixes: list[Fix] = []
    for i, x in enumerate(good):
        fixes.append(x)
        if i % 3 == 0:
            fixes.append(fix(x.unix + 3600 * (1 + i % 7) + i * 97, x.lat + (i % 5) * 0.3))
    f = FixFilter(max_hdop=5, max_speed_mps=50, reanchor_after=2)
    verdicts = run(f, fixes)
    assert verdicts.count(None) == 200
    assert f.reanchored == 0


@pytest.mark.parametrize("capacity", [1, 3, 10])
def test_ring_buffer_drops_oldest_and_counts(capacity: int) -> None:
    ring: RingBuffer[int] = RingBuffer(capacity)
    assert ring.latest() is None
    for i in range(25):
        ring.append(i)
    assert ring.snapshot() == list(range(25 - capacity, 25))
    assert list(ring) == ring.snapshot()
    assert len(ring) == capacity
    assert ring.dropped == 25 - capacity
    assert ring.appended == 25
    assert ring.latest() == 24
    assert ring.capacity == capacity


def test_ring_buffer_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer[int](0)
