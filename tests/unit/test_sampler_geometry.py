"""The cone geometry is conservative: what it keeps always lies in every disk that built it."""

from __future__ import annotations

import math
import random

import pytest

from tracker.geo import LocalFrame, haversine_m
from tracker.ride.geometry import (
    area,
    centroid,
    clip_disk,
    nearest_point,
    point_in_polygon,
    reduce_vertices,
)


def convex_ccw(poly: list[float]) -> bool:
    n = len(poly)
    for i in range(0, n, 2):
        j = (i + 2) % n
        k = (i + 4) % n
        cross = (poly[j] - poly[i]) * (poly[k + 1] - poly[j + 1]) - (poly[j + 1] - poly[i + 1]) * (
            poly[k] - poly[j]
        )
        if cross < -1e-9:
            return False
    return True


@pytest.mark.parametrize("seed", range(30))
def test_clipping_stays_inside_every_disk(seed: int) -> None:
    rng = random.Random(seed)
    disks = []
    poly = None
    for _ in range(rng.randint(1, 12)):
        d = (rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(0.5, 5))
        got = clip_disk(poly, *d)
        if not got:
            break
        disks.append(d)
        poly = got
        assert convex_ccw(poly)
        for i in range(0, len(poly), 2):
            for cx, cy, r in disks:
                assert math.hypot(poly[i] - cx, poly[i + 1] - cy) <= r * (1 + 1e-9)
        gx, gy = centroid(poly)
        assert point_in_polygon(poly, gx, gy)


def test_clipping_keeps_most_of_the_true_intersection() -> None:
    # two unit disks 1 apart: the lens has area 2 acos(1/2) - sqrt(3)/2 ≈ 1.228
    poly = clip_disk(clip_disk(None, 0, 0, 1), 1, 0, 1)
    assert 1.228 * 0.93 < area(poly) <= 1.2284


def test_a_disk_inside_the_polygon_replaces_it_and_a_far_one_empties_it() -> None:
    big = clip_disk(None, 0, 0, 10)
    small = clip_disk(big, 1, 1, 1)
    assert area(small) == pytest.approx(area(clip_disk(None, 1, 1, 1)))
    assert clip_disk(big, 50, 0, 1) == []


def test_nearest_point_and_vertex_reduction() -> None:
    sq = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert nearest_point(sq, 0.5, 0.5) == (0.5, 0.5)
    assert nearest_point(sq, 2.0, 0.5) == (1.0, 0.5)
    circle = clip_disk(None, 0, 0, 1)
    fewer = reduce_vertices(circle, 6)
    assert len(fewer) == 12
    assert all(point_in_polygon(circle, fewer[i], fewer[i + 1]) for i in range(0, 12, 2))


def test_local_frame_round_trips_and_measures_metres() -> None:
    f = LocalFrame(60.0, 25.0)
    x, y = f.to_xy(60.001, 25.002)
    lat, lon = f.to_latlon(x, y)
    assert (lat, lon) == pytest.approx((60.001, 25.002), abs=1e-12)
    assert math.hypot(x, y) == pytest.approx(haversine_m(60.0, 25.0, 60.001, 25.002), rel=1e-4)
    assert f.scale_error(60.0) == pytest.approx(0.0, abs=1e-15)
    assert f.scale_error(60.1) > 1e-3
