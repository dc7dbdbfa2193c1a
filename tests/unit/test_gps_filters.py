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
    assert f.drops == {"no_fix": 1, "hdop": 1, "repeated": 1, "backwards": 1, "outlier": 1}
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
