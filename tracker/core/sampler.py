"""Online trajectory thinning with a hard error bound (SED) and a hard delay bound.

The output is a polyline of *knots* at whole seconds. For every accepted fix at time t, the
position linearly interpolated in time between the knots around t lies within ``max_error_m`` of
the fix (the synchronized Euclidean distance, SED), after the knots are rounded to 6 decimals.
The knot that closes the segment covering a fix at time t is committed no later than the arrival
of the first fix at or after ``t + max_delay_s``. docs/sampler.md explains the method and why the
bounds hold; in short:

* A segment starts at a committed knot A (time Ta). Each later fix (t, P) confines the
  segment's velocity v to the disk ``|A + v (t - Ta) - P| <= eps``: the *cone* of CISED (Lin et
  al., VLDB J. 2019). The intersection of those disks, kept as a conservative convex polygon
  (sampler_geometry), is every line from A that covers all fixes so far. It empties when the
  ride turns; the segment then ends at the last whole second T at which it was still non-empty,
  and every point of ``A + V(T) (T - Ta)`` is a valid closing knot (a synthesized point).
* Which of those points to keep is where this sampler differs from greedy CISED-W: it keeps a
  handful of candidate knots (centre and corners of that region), runs the next segment's cone
  from each of them in parallel, and commits the one whose next segment lasts longest (ties: the
  largest feasible region). The delay bound caps that lookahead; when it is due, the best
  candidate so far is committed.
* Knots are whole seconds and are rounded to 6 decimals *before* they anchor the next segment,
  so each segment's cone is exact for the anchor actually sent; a small margin (rounding plus
  projection error) is taken off ``max_error_m`` for the end of the segment.

Pure: no I/O and no logging; counters tell the caller what was skipped. State is O(1) (bounded by
the number of candidates and fixes in one second) and JSON-serialisable for crash recovery.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from tracker.core.geo import LocalFrame
from tracker.core.sampler_geometry import (
    Polygon,
    area,
    centroid,
    clip_disk,
    nearest_point,
    point_in_polygon,
)
from tracker.model import Fix, Point

SNAPSHOT_VERSION = 1
ROUNDING_MARGIN_M = 0.08  # 6-decimal rounding: at most 0.0556 m north + 0.0556 m east
PROJECTION_MARGIN = 0.003  # relative: local-plane scale error within a few km of the origin
DEFAULT_CANDIDATES = 9

# A buffered fix: time (unix seconds), latitude, longitude, altitude or None.
_Pend = tuple[float, float, float, float | None]


def _r6(v: float) -> float:
    return round(v, 6)


def _r1(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


class _Cone:
    """One segment being grown from a fixed, already-rounded anchor knot."""

    __slots__ = (
        "aele",
        "alat",
        "alon",
        "ax",
        "ay",
        "ele",
        "first_t",
        "int_ele",
        "int_poly",
        "int_t",
        "pend",
        "poly",
        "ta",
    )

    def __init__(
        self, ta: int, ax: float, ay: float, alat: float, alon: float, aele: float | None
    ) -> None:
        self.ta = ta
        self.ax = ax
        self.ay = ay
        self.alat = alat
        self.alon = alon
        self.aele = aele
        self.poly: Polygon | None = None  # feasible velocities given every fix fed so far
        self.int_t = ta  # the latest whole second all of whose fixes are in int_poly ...
        self.int_poly: Polygon | None = None  # ... and the velocities feasible up to it
        self.int_ele: float | None = aele
        self.ele: float | None = aele
        self.pend: list[_Pend] = []  # fixes after int_t (at most one second of them)
        self.first_t: float | None = None

    def copy(self) -> _Cone:
        """A copy safe to keep while this one is fed (polygons are never mutated in place)."""
        c = _Cone(self.ta, self.ax, self.ay, self.alat, self.alon, self.aele)
        c.poly = self.poly
        c.int_t = self.int_t
        c.int_poly = self.int_poly
        c.int_ele = self.int_ele
        c.ele = self.ele
        c.pend = list(self.pend)
        c.first_t = self.first_t
        return c

    def to_json(self) -> list[Any]:
        return [
            self.ta,
            self.ax,
            self.ay,
            self.alat,
            self.alon,
            self.aele,
            self.poly,
            self.int_t,
            self.int_poly,
            self.int_ele,
            self.ele,
            [list(p) for p in self.pend],
            self.first_t,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> _Cone:
        c = cls(int(data[0]), data[1], data[2], data[3], data[4], data[5])
        c.poly = data[6]
        c.int_t = int(data[7])
        c.int_poly = data[8]
        c.int_ele = data[9]
        c.ele = data[10]
        c.pend = [(p[0], p[1], p[2], p[3]) for p in data[11]]
        c.first_t = data[12]
        return c


class _Unreachable(Exception):
    """A buffered fix could not be re-fed to any new segment: undo the fix that caused it."""


class Sampler:
    """Feed fixes in time order, get committed points; ``flush()`` when the ride ends.

    ``feed`` returns the points whose commitment this fix's arrival triggers (often none).
    Fixes whose time does not increase are skipped (``skipped_out_of_order``); a fix that no
    line through whole-second knots can reach within the bound (a jump of many metres within a
    fraction of a second) is skipped too (``skipped_unreachable``): the bound is for accepted
    fixes. The counters are plain attributes for the caller to log.
    """

    def __init__(
        self,
        max_error_m: float = 10.0,
        max_delay_s: int = 60,
        *,
        candidates: int = DEFAULT_CANDIDATES,
    ) -> None:
        if not max_error_m > 0.2:
            raise ValueError("max_error_m must be more than 0.2 m (the rounding margin)")
        if int(max_delay_s) < 1:
            raise ValueError("max_delay_s must be at least 1 s")
        if candidates < 1:
            raise ValueError("candidates must be at least 1")
        self.max_error_m = float(max_error_m)
        self.max_delay_s = int(max_delay_s)
        self.candidates = int(candidates)
        self._eps = self.max_error_m - ROUNDING_MARGIN_M - PROJECTION_MARGIN * self.max_error_m
        self.fixes_in = 0
        self.fixes_accepted = 0
        self.skipped_out_of_order = 0
        self.skipped_invalid = 0
        self.skipped_unreachable = 0
        self.points_out = 0
        self._last_t: float | None = None
        self._last_fix: _Pend | None = None
        self._frame: LocalFrame | None = None
        self._grow: _Cone | None = None  # the segment growing from the last committed knot
        self._cands: list[_Cone] = []  # or: candidate closing knots still being judged
        self._cand_due: float | None = None  # deadline (fix time) of the candidates' knot
        self._out: list[Point] = []

    # ------------------------------------------------------------------ feeding

    def feed(self, fix: Fix) -> list[Point]:
        """Take one fix; return the points committed because it arrived (usually none)."""
        self.fixes_in += 1
        t = fix.unix
        lat = fix.lat
        lon = fix.lon
        if not (
            math.isfinite(t)
            and math.isfinite(lat)
            and math.isfinite(lon)
            and -90.0 <= lat <= 90.0
            and -180.0 <= lon <= 180.0
        ):
            self.skipped_invalid += 1
            return []
        if self._last_t is not None and t <= self._last_t:
            self.skipped_out_of_order += 1
            return []
        alt = fix.alt_msl if fix.alt_msl is not None and math.isfinite(fix.alt_msl) else None
        out = self._out = []
        if self._frame is None:
            self._start(t, lat, lon, alt)
        else:
            backup = self._backup() if self._may_refeed_several(t) else None
            try:
                if not self._run(deque([(t, lat, lon, alt)]), top_level=True):
                    self.skipped_unreachable += 1
                    return []
                self._enforce_deadline(t)
            except _Unreachable:
                if backup is None:  # pragma: no cover - excluded by _may_refeed_several
                    raise
                self._grow, self._cands, self._frame, self._cand_due = backup
                self.skipped_unreachable += 1
                return []
        self._last_t = t
        self._last_fix = (t, lat, lon, alt)
        self.fixes_accepted += 1
        self.points_out += len(out)
        return out

    def _may_refeed_several(self, t: float) -> bool:
        """Whether this fix could make the sampler re-feed two or more buffered fixes.

        Only then can a re-fed fix turn out unreachable from every new anchor (a single fix is
        always reachable: the first fix of a segment leaves its velocity free), so only then is
        the state copied to undo this fix. With fixes at whole seconds this is never the case.
        """
        k = math.ceil(t) - 1
        cones = self._cands if self._cands else [self._grow] if self._grow else []
        return any(c.pend and k <= c.int_t for c in cones)

    def _backup(self) -> tuple[_Cone | None, list[_Cone], LocalFrame | None, float | None]:
        return (
            None if self._grow is None else self._grow.copy(),
            [c.copy() for c in self._cands],
            self._frame,
            self._cand_due,
        )

    def _start(self, t: float, lat: float, lon: float, alt: float | None) -> None:
        """The first fix: kept as the first point, at its whole second."""
        t0 = math.floor(t)
        alat, alon = _r6(lat), _r6(lon)
        self._frame = LocalFrame(alat, alon)
        self._emit(t0, alat, alon, alt)
        self._grow = _Cone(t0, 0.0, 0.0, alat, alon, alt)
        if t > t0:
            x, y = self._frame.to_xy(lat, lon)
            cone = self._grow
            cone.int_t = t0
            cone.poly = clip_disk(None, x / (t - t0), y / (t - t0), self._eps / (t - t0))
            cone.pend.append((t, lat, lon, alt))
            cone.first_t = t
            cone.ele = alt

    def _emit(self, ts: int, lat: float, lon: float, ele: float | None) -> None:
        self._out.append(Point(timestamp=ts, lat=lat, lon=lon, ele=_r1(ele)))

    def _disk(self, cone: _Cone, t: float, lat: float, lon: float) -> tuple[float, float, float]:
        assert self._frame is not None
        x, y = self._frame.to_xy(lat, lon)
        tau = t - cone.ta
        return (x - cone.ax) / tau, (y - cone.ay) / tau, self._eps / tau

    @staticmethod
    def _apply(cone: _Cone, fix: _Pend, poly: Polygon) -> None:
        """Record that ``fix`` was fed to ``cone`` and left ``poly`` feasible."""
        t = fix[0]
        k = math.ceil(t) - 1
        if k > cone.int_t:
            cone.int_t = k
            cone.int_poly = cone.poly
            cone.int_ele = cone.ele
            cone.pend = []
        cone.pend.append(fix)
        cone.poly = poly
        cone.ele = fix[3] if fix[3] is not None else cone.ele
        if cone.first_t is None:
            cone.first_t = t

    def _run(self, queue: deque[_Pend], *, top_level: bool) -> bool:
        """Feed queued fixes through the state machine. False: the first fix was unreachable."""
        first = top_level
        while queue:
            fix = queue.popleft()
            t, lat, lon, _alt = fix
            if not self._cands:
                cone = self._grow
                assert cone is not None
                cx, cy, r = self._disk(cone, t, lat, lon)
                poly = clip_disk(cone.poly, cx, cy, r)
                if poly:
                    self._apply(cone, fix, poly)
                else:
                    end_t = max(cone.int_t, math.ceil(t) - 1)
                    if end_t <= cone.ta:
                        if first:
                            return False
                        raise _Unreachable
                    self._apply(cone, fix, [])
                    queue.extendleft(reversed(self._open_candidates(cone)))
            else:
                alive: list[tuple[_Cone, Polygon]] = []
                ended: list[_Cone] = []
                for cone in self._cands:
                    cx, cy, r = self._disk(cone, t, lat, lon)
                    poly = clip_disk(cone.poly, cx, cy, r)
                    if poly:
                        alive.append((cone, poly))
                    elif max(cone.int_t, math.ceil(t) - 1) > cone.ta:
                        ended.append(cone)
                if not alive and not ended:
                    if first:
                        return False
                    raise _Unreachable
                for cone, poly in alive:
                    self._apply(cone, fix, poly)
                for cone in ended:
                    self._apply(cone, fix, [])
                if len(alive) >= 2:
                    self._cands = [c for c, _ in alive]
                elif len(alive) == 1:
                    self._commit_candidate(alive[0][0])
                else:
                    best = max(ended, key=self._end_area)
                    self._commit_candidate(best)
                    queue.extendleft(reversed(self._open_candidates(best)))
            first = False
        return True

    # ------------------------------------------------------------------ knots

    @staticmethod
    def _end_area(cone: _Cone) -> float:
        """Area of the region of closing knots at the cone's last whole second."""
        if cone.int_poly is None:
            return math.inf
        tau = cone.int_t - cone.ta
        return area(cone.int_poly) * tau * tau

    def _commit_candidate(self, cone: _Cone) -> None:
        self._emit(cone.ta, cone.alat, cone.alon, cone.aele)
        self._cands = []
        self._cand_due = None
        self._grow = cone

    def _open_candidates(self, cone: _Cone) -> list[_Pend]:
        """End ``cone``'s segment at its last whole second; return the fixes to re-feed.

        The candidates for the closing knot are the centre and up to ``candidates - 1`` corners
        of the region ``A + V (T - Ta)``, each rounded to 6 decimals, each the anchor of a new
        cone. The plane is re-centred on the region so it stays near the data.
        """
        frame = self._frame
        assert frame is not None
        end_t = cone.int_t
        tau = end_t - cone.ta
        pend = cone.pend
        if cone.int_poly is None:
            # No fix inside the segment: any knot closes it; start at the next fix.
            lat, lon = pend[0][1], pend[0][2]
            spots = [(lat, lon)]
        else:
            vp = cone.int_poly
            gx, gy = centroid(vp)
            pts = [(gx, gy)]
            nv = len(vp) // 2
            want = min(self.candidates - 1, nv)
            for k in range(want):
                i = (k * nv) // want
                pts.append((vp[2 * i], vp[2 * i + 1]))
            spots = [frame.to_latlon(cone.ax + vx * tau, cone.ay + vy * tau) for vx, vy in pts]
        rounded: list[tuple[float, float]] = []
        for lat, lon in spots:
            key = (_r6(lat), _r6(lon))
            if key not in rounded:
                rounded.append(key)
        self._frame = frame = LocalFrame(rounded[0][0], rounded[0][1])
        cands = []
        for lat, lon in rounded:
            x, y = frame.to_xy(lat, lon)
            cands.append(_Cone(end_t, x, y, lat, lon, cone.int_ele))
        self._cands = cands
        self._grow = None
        first_after_anchor = cone.first_t if cone.first_t is not None else pend[0][0]
        self._cand_due = first_after_anchor + self.max_delay_s
        return list(pend)

    def _enforce_deadline(self, now: float) -> None:
        """Commit whatever the delay bound says must be committed by the fix at ``now``."""
        while True:
            if self._cands:
                assert self._cand_due is not None
                if now < self._cand_due:
                    return
                best = max(self._cands, key=lambda c: area(c.poly) if c.poly else math.inf)
                self._commit_candidate(best)
                continue
            cone = self._grow
            assert cone is not None
            if cone.first_t is None or now < cone.first_t + self.max_delay_s:
                return
            # Due with no time left to look ahead: close at the latest whole second, at the
            # centre of the region of closing knots, and carry on from there.
            if now == math.ceil(now) and cone.poly:
                cone.int_t = int(now)
                cone.int_poly = cone.poly
                cone.int_ele = cone.ele
                cone.pend = []
            self._force_close(cone)

    def _force_close(self, cone: _Cone) -> None:
        frame = self._frame
        assert frame is not None
        assert cone.int_poly is not None
        tau = cone.int_t - cone.ta
        gx, gy = centroid(cone.int_poly)
        lat, lon = frame.to_latlon(cone.ax + gx * tau, cone.ay + gy * tau)
        lat, lon = _r6(lat), _r6(lon)
        self._emit(cone.int_t, lat, lon, cone.int_ele)
        self._frame = frame = LocalFrame(lat, lon)
        nxt = _Cone(cone.int_t, 0.0, 0.0, lat, lon, cone.int_ele)
        self._grow = nxt
        self._run(deque(cone.pend), top_level=False)

    # ------------------------------------------------------------------ end of ride

    def flush(self) -> list[Point]:
        """End of ride: commit the rest, ending with a point at the last fix's second."""
        out = self._out = []
        if self._frame is None or self._last_fix is None:
            return out
        if self._cands:
            self._commit_candidate(self._closest_candidate())
        cone = self._grow
        assert cone is not None
        if cone.poly is not None:
            self._close_at_last_fix(cone, self._last_fix)
        self.points_out += len(out)
        self._frame = None
        self._grow = None
        self._last_fix = None
        return out

    def _closest_candidate(self) -> _Cone:
        last = self._last_fix
        assert last is not None
        assert self._frame is not None
        end_t = math.ceil(last[0])
        px, py = self._frame.to_xy(last[1], last[2])

        def miss(c: _Cone) -> float:
            assert c.poly is not None
            tau = end_t - c.ta
            vx, vy = nearest_point(c.poly, (px - c.ax) / tau, (py - c.ay) / tau)
            return math.hypot(c.ax + vx * tau - px, c.ay + vy * tau - py)

        return min(self._cands, key=miss)

    def _close_at_last_fix(self, cone: _Cone, last: _Pend) -> None:
        """The final knot: at the last fix itself when the bound allows, else nearest to it."""
        frame = self._frame
        assert frame is not None
        assert cone.poly is not None
        t, lat, lon, alt = last
        end_t = math.ceil(t)
        tau = end_t - cone.ta
        px, py = frame.to_xy(lat, lon)
        vx, vy = (px - cone.ax) / tau, (py - cone.ay) / tau
        if point_in_polygon(cone.poly, vx, vy):
            self._emit(end_t, _r6(lat), _r6(lon), alt)
            return
        if cone.int_t > cone.ta and cone.int_poly is not None:
            # One knot more: close at the last whole second before the fix, at a point from
            # which a segment to the fix itself covers the fixes of that last second.
            tk = cone.int_t - cone.ta
            region: Polygon = [
                v
                for i in range(0, len(cone.int_poly), 2)
                for v in (cone.ax + cone.int_poly[i] * tk, cone.ay + cone.int_poly[i + 1] * tk)
            ]
            for pt, plat, plon, _ in cone.pend:
                s = pt - cone.int_t
                if s >= 1.0:
                    continue
                qx, qy = frame.to_xy(plat, plon)
                region = clip_disk(
                    region, (qx - s * px) / (1 - s), (qy - s * py) / (1 - s), self._eps / (1 - s)
                )
                if not region:
                    break
            if region:
                gx, gy = centroid(region)
                klat, klon = frame.to_latlon(gx, gy)
                self._emit(cone.int_t, _r6(klat), _r6(klon), cone.int_ele)
                self._emit(end_t, _r6(lat), _r6(lon), alt)
                return
        nx, ny = nearest_point(cone.poly, vx, vy)
        klat, klon = frame.to_latlon(cone.ax + nx * tau, cone.ay + ny * tau)
        self._emit(end_t, _r6(klat), _r6(klon), alt)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (bounded size); ``restore`` continues from it."""
        return {
            "version": SNAPSHOT_VERSION,
            "max_error_m": self.max_error_m,
            "max_delay_s": self.max_delay_s,
            "candidates": self.candidates,
            "counters": [
                self.fixes_in,
                self.fixes_accepted,
                self.skipped_out_of_order,
                self.skipped_invalid,
                self.skipped_unreachable,
                self.points_out,
            ],
            "last_t": self._last_t,
            "last_fix": None if self._last_fix is None else list(self._last_fix),
            "frame": None if self._frame is None else [self._frame.lat0, self._frame.lon0],
            "grow": None if self._grow is None else self._grow.to_json(),
            "cands": [c.to_json() for c in self._cands],
            "cand_due": self._cand_due,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Sampler:
        """A sampler that continues exactly where the one that took ``snapshot`` was."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown sampler snapshot version {snapshot.get('version')!r}")
        s = cls(snapshot["max_error_m"], snapshot["max_delay_s"], candidates=snapshot["candidates"])
        (
            s.fixes_in,
            s.fixes_accepted,
            s.skipped_out_of_order,
            s.skipped_invalid,
            s.skipped_unreachable,
            s.points_out,
        ) = (int(v) for v in snapshot["counters"])
        s._last_t = snapshot["last_t"]
        lf = snapshot["last_fix"]
        s._last_fix = None if lf is None else (lf[0], lf[1], lf[2], lf[3])
        fr = snapshot["frame"]
        s._frame = None if fr is None else LocalFrame(fr[0], fr[1])
        s._grow = None if snapshot["grow"] is None else _Cone.from_json(snapshot["grow"])
        s._cands = [_Cone.from_json(c) for c in snapshot["cands"]]
        s._cand_due = snapshot["cand_due"]
        return s
