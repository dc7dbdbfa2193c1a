"""Offline references and baselines for the sampler, plus an independent SED checker.

Nothing here imports the sampler's geometry: the checker measures distances with its own
haversine on interpolated latitude/longitude, and the references work on plain planar metres.

* ``check_sed``: for every fix, the great-circle distance to the position interpolated linearly
  in time (in degrees, as a map would draw it) between the kept points around the fix.
* ``opt``: OPT, the fewest *original* fixes that keep every fix within the bound (Imai–Iri: a
  shortest path over the graph of valid segments). With ``max_delay_s`` it is OPT_d: a segment
  from kept fix i to kept fix j is allowed only if ``t_j - t_(i+1) <= max_delay_s``.
  Early exit: each fix k after i confines the segment's velocity to the disk
  ``|P_i + v (t_k - t_i) - P_k| <= eps``; a segment i->j needs its velocity in the disks of all
  k < j, so once some pair of disks is disjoint along one of 16 directions (their circumscribed
  slabs do not overlap: a sufficient test for an empty intersection), no later j can work.
* ``opening_window``: the classic online opening window with SED (keeps original fixes).
* ``douglas_peucker``: top-down Douglas–Peucker with SED (offline, original fixes).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

R_EARTH = 6_371_008.8
_DIRS = [(math.cos(2 * math.pi * j / 16), math.sin(2 * math.pi * j / 16)) for j in range(16)]


@dataclass(frozen=True)
class Track:
    """Fix times (unix seconds) and positions, in degrees and in local planar metres."""

    t: list[float]
    lat: list[float]
    lon: list[float]
    x: list[float]
    y: list[float]

    @classmethod
    def from_latlon(cls, t: Sequence[float], lat: Sequence[float], lon: Sequence[float]) -> Track:
        lat0 = sum(lat) / len(lat)
        lon0 = lon[0]
        ky = math.radians(1.0) * R_EARTH
        kx = ky * math.cos(math.radians(lat0))
        xs = [(lo - lon0) * kx for lo in lon]
        ys = [(la - lat0) * ky for la in lat]
        return cls(list(t), list(lat), list(lon), xs, ys)

    def __len__(self) -> int:
        return len(self.t)


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres (written here again so the checker shares no code)."""
    f1 = lat1 * math.pi / 180.0
    f2 = lat2 * math.pi / 180.0
    h = (
        math.sin((f2 - f1) / 2) ** 2
        + math.cos(f1) * math.cos(f2) * math.sin((lon2 - lon1) * math.pi / 360.0) ** 2
    )
    return 2 * R_EARTH * math.asin(min(1.0, math.sqrt(h)))


@dataclass
class SedReport:
    max_sed_m: float
    violations: int
    uncovered: int  # fixes outside the time span of the kept points


def check_sed(
    times: Sequence[float],
    lats: Sequence[float],
    lons: Sequence[float],
    kept: Sequence[tuple[float, float, float]],
    max_error_m: float,
) -> SedReport:
    """SED of every fix against the kept points ``(time, lat, lon)`` (sorted by time)."""
    kt = [k[0] for k in kept]
    worst = 0.0
    bad = 0
    uncovered = 0
    for t, la, lo in zip(times, lats, lons, strict=True):
        j = bisect.bisect_left(kt, t)
        if j < len(kt) and kt[j] == t:
            pla, plo = kept[j][1], kept[j][2]
        elif j == 0 or j == len(kt):
            uncovered += 1
            continue
        else:
            t0, la0, lo0 = kept[j - 1]
            t1, la1, lo1 = kept[j]
            s = (t - t0) / (t1 - t0)
            pla = la0 + (la1 - la0) * s
            plo = lo0 + (lo1 - lo0) * s
        d = great_circle_m(la, lo, pla, plo)
        worst = max(worst, d)
        if d > max_error_m:
            bad += 1
    return SedReport(worst, bad, uncovered)


def segment_valid(tr: Track, i: int, j: int, eps: float) -> bool:
    """Whether the straight segment from fix i to fix j keeps every fix between within eps."""
    ti, xi, yi = tr.t[i], tr.x[i], tr.y[i]
    dt = tr.t[j] - ti
    vx = (tr.x[j] - xi) / dt
    vy = (tr.y[j] - yi) / dt
    e2 = eps * eps
    for k in range(i + 1, j):
        tau = tr.t[k] - ti
        dx = xi + vx * tau - tr.x[k]
        dy = yi + vy * tau - tr.y[k]
        if dx * dx + dy * dy > e2:
            return False
    return True


def _valid_ends(tr: Track, i: int, eps: float, max_delay_s: float | None) -> list[int]:
    """Every j > i such that i -> j is a valid segment (and within the delay bound)."""
    n = len(tr)
    out = [i + 1] if i + 1 < n else []
    if i + 2 >= n:
        return out
    ti, xi, yi = tr.t[i], tr.x[i], tr.y[i]
    lo = [-math.inf] * 16  # lower bounds of u_j . v (from the opposite direction)
    hi = [math.inf] * 16
    disks: list[tuple[float, float, float]] = []  # (cx, cy, r^2) of velocity disks
    limit = math.inf if max_delay_s is None else tr.t[i + 1] + max_delay_s
    for j in range(i + 2, n):
        if tr.t[j] > limit:
            break
        k = j - 1
        tau = tr.t[k] - ti
        cx = (tr.x[k] - xi) / tau
        cy = (tr.y[k] - yi) / tau
        r = eps / tau
        disks.append((cx, cy, r * r))
        empty = False
        for d, (ux, uy) in enumerate(_DIRS):
            c = cx * ux + cy * uy
            if c + r < hi[d]:
                hi[d] = c + r
            if c - r > lo[d]:
                lo[d] = c - r
            if lo[d] > hi[d]:
                empty = True
        if empty:
            break
        dt = tr.t[j] - ti
        vx = (tr.x[j] - xi) / dt
        vy = (tr.y[j] - yi) / dt
        ok = True
        for d, (ux, uy) in enumerate(_DIRS):
            c = vx * ux + vy * uy
            if c > hi[d] or c < lo[d]:
                ok = False
                break
        if ok:
            for cx2, cy2, r2 in reversed(disks):
                if (vx - cx2) ** 2 + (vy - cy2) ** 2 > r2:
                    ok = False
                    break
        if ok:
            out.append(j)
    return out


def opt(tr: Track, eps: float, max_delay_s: float | None = None) -> list[int]:
    """Indexes of a minimum set of original fixes (OPT, or OPT_d with ``max_delay_s``)."""
    n = len(tr)
    if n <= 2:
        return list(range(n))
    best = [math.inf] * n
    prev = [-1] * n
    best[0] = 1
    for i in range(n - 1):
        if best[i] == math.inf:
            continue
        nb = best[i] + 1
        for j in _valid_ends(tr, i, eps, max_delay_s):
            if nb < best[j]:
                best[j] = nb
                prev[j] = i
    path = [n - 1]
    while path[-1] != 0:
        path.append(prev[path[-1]])
    return path[::-1]


def opening_window(tr: Track, eps: float, max_delay_s: float | None = None) -> list[int]:
    """Online opening window: extend from the anchor while valid, then keep the last good end."""
    n = len(tr)
    kept = [0]
    a = 0
    j = a + 2
    while j < n:
        too_late = max_delay_s is not None and tr.t[j] - tr.t[a + 1] > max_delay_s
        if too_late or not segment_valid(tr, a, j, eps):
            a = j - 1
            kept.append(a)
            j = a + 2
        else:
            j += 1
    if kept[-1] != n - 1:
        kept.append(n - 1)
    return kept


def douglas_peucker(tr: Track, eps: float) -> list[int]:
    """Top-down Douglas–Peucker with SED (iterative, offline)."""
    n = len(tr)
    keep = [False] * n
    keep[0] = keep[n - 1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        ti, xi, yi = tr.t[i], tr.x[i], tr.y[i]
        dt = tr.t[j] - ti
        vx = (tr.x[j] - xi) / dt
        vy = (tr.y[j] - yi) / dt
        worst = -1.0
        wk = -1
        for k in range(i + 1, j):
            tau = tr.t[k] - ti
            d = (xi + vx * tau - tr.x[k]) ** 2 + (yi + vy * tau - tr.y[k]) ** 2
            if d > worst:
                worst = d
                wk = k
        if worst > eps * eps:
            keep[wk] = True
            stack.append((i, wk))
            stack.append((wk, j))
    return [k for k in range(n) if keep[k]]


def brute_force_opt(tr: Track, eps: float, max_delay_s: float | None = None) -> int:
    """The size of OPT by trying every subset (tiny tracks only: the test oracle for ``opt``)."""
    from itertools import combinations

    n = len(tr)
    inner = list(range(1, n - 1))
    for size in range(0, n - 1):
        for combo in combinations(inner, size):
            idx = [0, *combo, n - 1]
            if all(
                segment_valid(tr, a, b, eps)
                and (max_delay_s is None or b == a + 1 or tr.t[b] - tr.t[a + 1] <= max_delay_s)
                for a, b in itertools.pairwise(idx)
            ):
                return len(idx)
    return n
