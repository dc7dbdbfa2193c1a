"""The sampler's guarantees on random rides, checked by arithmetic that shares nothing with it.

The checker here interpolates the kept points linearly in latitude/longitude and measures the
great-circle distance to each accepted fix (its own haversine): the SED bound. It also checks
the delay bound (which feed call emitted the point that closes each fix's segment), causality,
whole-second strictly increasing timestamps, 6-decimal rounding, first and last point, and that
a snapshot taken anywhere (through JSON) continues exactly like the uninterrupted sampler.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.model import Fix, Point
from tracker.ride.sampler import Sampler

R = 6_371_008.8


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    a1 = math.radians(lat1)
    a2 = math.radians(lat2)
    h = (
        math.sin((a2 - a1) / 2) ** 2
        + math.cos(a1) * math.cos(a2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * R * math.asin(min(1.0, math.sqrt(h)))


def _fix(unix: float, lat: float, lon: float, alt: float | None = None) -> Fix:
    return Fix(time=datetime.fromtimestamp(unix, tz=UTC), unix=unix, lat=lat, lon=lon, alt_msl=alt)


@dataclass
class Run:
    points: list[Point]
    emitted_by: list[int]  # index of the feed call that emitted each point (len(fixes): flush)
    outputs: list[list[Point]]
    accepted: list[bool]
    sampler: Sampler


def run(fixes: list[Fix], eps: float, delay: int, cut: int | None = None) -> Run:
    s = Sampler(eps, delay)
    points: list[Point] = []
    emitted_by: list[int] = []
    outputs: list[list[Point]] = []
    accepted: list[bool] = []
    for i, f in enumerate(fixes):
        if cut is not None and i == cut:
            s = Sampler.restore(json.loads(json.dumps(s.snapshot())))
        before = s.fixes_accepted
        got = s.feed(f)
        accepted.append(s.fixes_accepted == before + 1)
        outputs.append(got)
        points.extend(got)
        emitted_by.extend([i] * len(got))
    got = s.flush()
    outputs.append(got)
    points.extend(got)
    emitted_by.extend([len(fixes)] * len(got))
    return Run(points, emitted_by, outputs, accepted, s)


def check(fixes: list[Fix], r: Run, eps: float, delay: int) -> None:
    pts = r.points
    ts = [p.timestamp for p in pts]
    acc = [f for f, ok in zip(fixes, r.accepted, strict=True) if ok]
    if not acc:
        assert pts == []
        return
    assert all(isinstance(t, int) for t in ts)
    assert all(a < b for a, b in itertools.pairwise(ts)), ts
    for p in pts:
        assert round(p.lat, 6) == p.lat
        assert round(p.lon, 6) == p.lon
        assert p.ele is None or round(p.ele, 1) == p.ele
    first = acc[0]
    assert ts[0] == math.floor(first.unix)
    assert (pts[0].lat, pts[0].lon) == (round(first.lat, 6), round(first.lon, 6))
    last = acc[-1].unix  # (a time a hair after a whole second counts as at it)
    assert ts[-1] == (math.floor(last) if last - math.floor(last) <= 2e-6 else math.ceil(last))
    # SED of every accepted fix, and the delay bound of the point closing its segment.
    times_in_order = [f.unix for f in fixes]
    for f in acc:
        j = bisect.bisect_left(ts, f.unix)
        assert j < len(ts), "fix after the last point"
        if ts[j] == f.unix:
            lat, lon = pts[j].lat, pts[j].lon
        else:
            assert j > 0, "fix before the first point"
            a, b = pts[j - 1], pts[j]
            s = (f.unix - a.timestamp) / (b.timestamp - a.timestamp)
            lat = a.lat + (b.lat - a.lat) * s
            lon = a.lon + (b.lon - a.lon) * s
        d = _distance_m(f.lat, f.lon, lat, lon)
        assert d <= eps, f"SED {d:.3f} m > {eps} m at t={f.unix}"
        # the point closing this fix's segment is pts[j]; it must be out by the arrival of the
        # first fix at or after t + delay (fixes arrive in list order)
        due = next(
            (
                i
                for i, t in enumerate(times_in_order)
                if t >= f.unix + delay and t > max(times_in_order[:i], default=-math.inf)
            ),
            len(fixes),
        )
        assert r.emitted_by[j] <= due, f"point {ts[j]} for fix {f.unix} late"


# ---------------------------------------------------------------- ride generator


@st.composite
def rides(draw: st.DrawFn) -> tuple[list[Fix], float, int]:
    hz = draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 5.0, 10.0]))
    eps = draw(st.sampled_from([2.0, 5.0, 10.0, 20.0]))
    delay = draw(st.sampled_from([1, 3, 10, 60]))
    dt = 1.0 / hz
    lat0 = draw(st.integers(-70_000, 70_000)) / 1000.0
    lon0 = draw(st.integers(-179_000, 179_000)) / 1000.0
    # Times as a receiver gives them: whole multiples of its period after a phase offset, each
    # the float nearest to the decimal time, and for some rides epochs that wander by a few
    # milliseconds (fixes a hair before or after whole seconds).
    t = 1_700_000_000 + draw(st.sampled_from([0.0, 0.25, 0.5, 0.9]))
    base_ms = round(t * 1000)
    step_ms = round(dt * 1000)
    n = 0
    # GPS noise (standard deviation) up to the bound itself
    wander = draw(st.sampled_from([0, 1]))
    jitter_m = eps * draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]))
    x = y = 0.0
    heading = math.radians(draw(st.integers(0, 359)))
    fixes: list[Fix] = []
    ky = math.radians(1.0) * R
    kx = ky * math.cos(math.radians(lat0))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    n_legs = draw(st.integers(1, 6))
    for _ in range(n_legs):
        kind = draw(st.sampled_from(["walk", "zigzag", "stop", "uturn", "straight", "gap"]))
        speed = draw(st.integers(0, 200)) / 10.0
        secs = draw(st.integers(1, 60))
        steps = max(1, int(secs / dt))
        if kind == "gap":
            base_ms += draw(st.integers(2, 400)) * 1000 + 500 * draw(st.integers(0, 1))
            continue
        if kind == "uturn":
            heading += math.pi
        for k in range(steps):
            if kind == "walk":
                heading += rnd.gauss(0.0, 0.3)
            elif kind == "zigzag" and k % max(1, int(8 / dt)) == 0:
                heading += math.pi / 2 if (k // max(1, int(8 / dt))) % 2 else -math.pi / 2
            v = 0.0 if kind == "stop" else speed
            x += v * dt * math.cos(heading)
            y += v * dt * math.sin(heading)
            n += 1
            t = (base_ms + n * step_ms + rnd.randint(-3, 3) * wander) / 1000
            ox = x + rnd.gauss(0.0, jitter_m)
            oy = y + rnd.gauss(0.0, jitter_m)
            alt = None if k % 7 == 3 else 100.0 + rnd.uniform(-2, 2)
            fixes.append(_fix(t, lat0 + oy / ky, lon0 + ox / kx, alt))
            if rnd.random() < 0.02:  # a repeated or backwards time: must be skipped
                fixes.append(_fix(t - rnd.choice([0.0, 0.5, 3.0]), lat0, lon0))
            if rnd.random() < 0.005:  # a wild fix far away (a filter would drop it)
                n += 1
                t = (base_ms + n * step_ms) / 1000
                fixes.append(_fix(t, lat0 + rnd.uniform(-5, 5), lon0 + rnd.uniform(-5, 5)))
    return fixes, eps, delay


@settings(max_examples=200)
@given(rides())
def test_bounds_hold_on_random_rides(ride: tuple[list[Fix], float, int]) -> None:
    fixes, eps, delay = ride
    r = run(fixes, eps, delay)
    check(fixes, r, eps, delay)


@settings(max_examples=100)
@given(rides(), st.floats(0.0, 1.0))
def test_restoring_a_snapshot_anywhere_changes_nothing(
    ride: tuple[list[Fix], float, int], where: float
) -> None:
    fixes, eps, delay = ride
    cut = int(where * len(fixes))
    plain = run(fixes, eps, delay)
    resumed = run(fixes, eps, delay, cut=cut)
    assert resumed.outputs == plain.outputs


@settings(max_examples=60)
@given(rides(), st.floats(0.0, 1.0))
def test_causal_cutting_the_input_changes_nothing_before_the_cut(
    ride: tuple[list[Fix], float, int], where: float
) -> None:
    fixes, eps, delay = ride
    cut = int(where * len(fixes))
    full = run(fixes, eps, delay)
    part = run(fixes[:cut], eps, delay)
    assert part.outputs[:cut] == full.outputs[:cut]
    check(fixes[:cut], part, eps, delay)
