"""The offline references of the benchmark (OPT, OPT_d, baselines) against brute force."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from benchmarks.sampler_reference import (
    Track,
    brute_force_opt,
    check_sed,
    douglas_peucker,
    opening_window,
    opt,
    segment_valid,
)

KY = math.radians(1.0) * 6_371_008.8


def small_track(seed: int, n: int) -> Track:
    rng = random.Random(seed)
    x = y = 0.0
    heading = rng.uniform(0, 6.3)
    t = 0.0
    ts, lats, lons = [], [], []
    for _ in range(n):
        heading += rng.gauss(0, 0.6)
        v = rng.uniform(0, 12)
        t += rng.choice([1.0, 1.0, 2.0, 0.5])
        x += v * math.cos(heading)
        y += v * math.sin(heading)
        ts.append(t)
        lats.append(45.0 + (y + rng.gauss(0, 2)) / KY)
        lons.append(7.0 + (x + rng.gauss(0, 2)) / (KY * math.cos(math.radians(45.0))))
    return Track.from_latlon(ts, lats, lons)


def valid(tr: Track, idx: list[int], eps: float, delay: float | None) -> bool:
    return all(
        segment_valid(tr, a, b, eps)
        and (delay is None or b == a + 1 or tr.t[b] - tr.t[a + 1] <= delay)
        for a, b in itertools.pairwise(idx)
    )


@pytest.mark.parametrize("seed", range(12))
def test_opt_and_opt_d_match_brute_force(seed: int) -> None:
    tr = small_track(seed, 11)
    for eps in (3.0, 8.0):
        for delay in (None, 3.0):
            best = opt(tr, eps, delay)
            assert best[0] == 0
            assert best[-1] == len(tr) - 1
            assert valid(tr, best, eps, delay)
            assert len(best) == brute_force_opt(tr, eps, delay)


@pytest.mark.parametrize("seed", range(4))
def test_baselines_keep_the_bound_and_never_beat_opt(seed: int) -> None:
    tr = small_track(seed, 200)
    eps = 6.0
    o = len(opt(tr, eps))
    od = len(opt(tr, eps, 10.0))
    dp = douglas_peucker(tr, eps)
    ow = opening_window(tr, eps, 10.0)
    assert valid(tr, dp, eps, None)
    assert valid(tr, ow, eps, 10.0)
    assert o <= od <= len(ow)
    assert o <= len(dp)


def test_check_sed_measures_the_distance_to_the_interpolated_position() -> None:
    kept = [(0.0, 45.0, 7.0), (10.0, 45.0 + 100 / KY, 7.0)]
    rep = check_sed([5.0], [45.0 + 53 / KY], [7.0], kept, 2.5)
    assert rep.max_sed_m == pytest.approx(3.0, abs=1e-6)
    assert rep.violations == 1
    assert check_sed([11.0], [45.0], [7.0], kept, 2.5).uncovered == 1
