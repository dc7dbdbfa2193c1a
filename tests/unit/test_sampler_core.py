"""Exact checks of the sampler on hand-made rides, and its edge cases."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime

import pytest

from tests.property.test_sampler_properties import check, run
from tracker.model import Fix, Point
from tracker.ride.sampler import Sampler

T0 = 1_700_000_000
KY = math.radians(1.0) * 6_371_008.8
LAT0, LON0 = 48.0, 11.0
KX = KY * math.cos(math.radians(LAT0))


def fix(t: float, x: float, y: float, alt: float | None = 500.0) -> Fix:
    """A fix ``x`` m east and ``y`` m north of the origin at ``T0 + t``."""
    unix = T0 + t
    return Fix(
        time=datetime.fromtimestamp(unix, tz=UTC),
        unix=unix,
        lat=LAT0 + y / KY,
        lon=LON0 + x / KX,
        alt_msl=alt,
    )


def xy(p: Point) -> tuple[float, float]:
    return (p.lon - LON0) * KX, (p.lat - LAT0) * KY


def feed_all(s: Sampler, fixes: list[Fix]) -> list[Point]:
    out: list[Point] = []
    for f in fixes:
        out += s.feed(f)
    return out + s.flush()


def test_a_straight_line_keeps_only_its_ends() -> None:
    fixes = [fix(t, 8.0 * t, 3.0 * t) for t in range(50)]
    pts = feed_all(Sampler(5.0, 60), fixes)
    assert [p.timestamp for p in pts] == [T0, T0 + 49]
    assert (pts[0].lat, pts[0].lon) == (round(fixes[0].lat, 6), round(fixes[0].lon, 6))
    assert (pts[-1].lat, pts[-1].lon) == (round(fixes[-1].lat, 6), round(fixes[-1].lon, 6))
    assert pts[0].ele == 500.0


def test_a_square_keeps_its_corners() -> None:
    # 100 m sides at 5 m/s: corners at t = 0, 20, 40, 60, 80
    corners = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0), (0.0, 0.0)]
    fixes = []
    for t in range(81):
        side, k = divmod(t, 20)
        if side == 4:
            side, k = 3, 20
        (ax, ay), (bx, by) = corners[side], corners[side + 1]
        fixes.append(fix(t, ax + (bx - ax) * k / 20, ay + (by - ay) * k / 20))
    eps = 2.0
    pts = feed_all(Sampler(eps, 60), fixes)
    assert len(pts) == 5
    for p, (cx, cy) in zip(pts, corners, strict=True):
        px, py = xy(p)
        assert math.hypot(px - cx, py - cy) <= 3 * eps
    check(fixes, run(fixes, eps, 60), eps, 60)


def test_a_stop_at_a_light_is_kept_as_a_stop() -> None:
    fixes = [fix(t, 6.0 * t, 0.0) for t in range(30)]
    fixes += [fix(t, 174.0, 0.0) for t in range(30, 75)]  # 45 s standing
    fixes += [fix(t, 174.0 + 6.0 * (t - 74), 0.0) for t in range(75, 110)]
    eps = 3.0
    pts = feed_all(Sampler(eps, 60), fixes)
    check(fixes, run(fixes, eps, 60), eps, 60)
    # the polyline stands still (within the bound) through the stop
    standing = [p for p in pts if T0 + 30 <= p.timestamp <= T0 + 74]
    assert standing
    assert all(abs(xy(p)[0] - 174.0) <= eps for p in standing)


def test_repeated_backwards_and_invalid_fixes_are_skipped_and_counted() -> None:
    s = Sampler(10.0, 60)
    s.feed(fix(0, 0, 0))
    s.feed(fix(1, 5, 0))
    assert s.feed(fix(1, 9, 9)) == []
    assert s.feed(fix(0.5, 9, 9)) == []
    bad = Fix(time=datetime.fromtimestamp(T0 + 2, tz=UTC), unix=T0 + 2, lat=math.nan, lon=0.0)
    assert s.feed(bad) == []
    s.feed(fix(2, 10, 0))
    assert (s.skipped_out_of_order, s.skipped_invalid, s.fixes_accepted) == (2, 1, 3)


def test_a_wild_jump_is_skipped_and_the_bound_holds_for_the_rest() -> None:
    fixes = [fix(t, 5.0 * t, 0.0) for t in range(20)]
    fixes.insert(10, fix(9.5, 40_000.0, 0.0))
    r = run(fixes, 5.0, 60)
    assert r.sampler.skipped_jump == 1
    check(fixes, r, 5.0, 60)


def test_the_delay_bound_closes_long_segments() -> None:
    fixes = [fix(t, 4.0 * t, 0.0) for t in range(400)]
    r = run(fixes, 10.0, 30)
    check(fixes, r, 10.0, 30)
    ts = [p.timestamp for p in r.points]
    assert len(ts) >= 400 // 31
    assert max(b - a for a, b in itertools.pairwise(ts)) <= 31


def test_sub_second_fixes_give_whole_second_points() -> None:
    fixes = [
        fix(k / 10, 7.0 * k / 10 + 3 * math.sin(k / 7), 2.0 * math.cos(k / 11)) for k in range(600)
    ]
    r = run(fixes, 4.0, 60)
    check(fixes, r, 4.0, 60)
    assert all(isinstance(p.timestamp, int) for p in r.points)


def test_a_first_fix_between_seconds_starts_at_its_second() -> None:
    fixes = [fix(0.5 + t, 3.0 * t, 0.0) for t in range(30)]
    r = run(fixes, 5.0, 60)
    check(fixes, r, 5.0, 60)
    assert r.points[0].timestamp == T0
    assert r.points[-1].timestamp == T0 + 30


def test_flush_without_fixes_gives_nothing() -> None:
    assert Sampler().flush() == []


def test_the_snapshot_stays_small_on_a_long_ride() -> None:
    s = Sampler(10.0, 60)
    sizes = []
    for t in range(3600):
        s.feed(fix(t, 6.0 * t + 20 * math.sin(t / 40), 15 * math.cos(t / 25)))
        if t % 600 == 599:
            sizes.append(len(json.dumps(s.snapshot())))
    # bounded by the search (leaves x polygon vertices), not by the ride: a state holding the
    # ride's fixes would be far past this after an hour
    assert max(sizes) < 20_000


def test_restore_refuses_an_unknown_version() -> None:
    snap = Sampler().snapshot()
    snap["version"] = 99
    with pytest.raises(ValueError, match="version"):
        Sampler.restore(snap)


@pytest.mark.parametrize(("err", "delay"), [(0.1, 60), (10.0, 0)])
def test_bad_parameters_are_refused(err: float, delay: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Sampler(err, delay)


def test_the_greedy_baseline_keeps_the_bound_too() -> None:
    fixes = [fix(t, 6.0 * t, 30 * math.sin(t / 15)) for t in range(300)]
    s = Sampler(5.0, 60, lookahead=False)
    pts = feed_all(s, fixes)
    greedy = len(pts)
    pts2 = feed_all(Sampler(5.0, 60), fixes)
    assert len(pts2) <= greedy
    check(fixes, run(fixes, 5.0, 60), 5.0, 60)
