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
# The search (docs/sampler.md): when a segment ends, candidate closing knots are the centre and
# corners of its region of closing knots at its last whole second, plus a few at each of the two
# whole seconds before; at most BEAM paths are followed at once.
CANDIDATES_AT_END = 9
EARLIER_ENDS = 2
CANDIDATES_PER_EARLIER_END = 3
BEAM = 9

# A buffered fix: time (unix seconds), latitude, longitude, altitude or None.
_Pend = tuple[float, float, float, float | None]


def _quality(poly: Polygon | None) -> float:
    """How much freedom a leaf has left: the area of its feasible velocities."""
    if not poly:
        return math.inf if poly is None else 0.0
    return area(poly)


def _r6(v: float) -> float:
    return round(v, 6)


def _r1(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


# An uncommitted knot: whole second, rounded latitude and longitude, elevation, and the time of
# the first fix after it (which starts the delay clock of the knot after it).
_Knot = tuple[int, float, float, float | None, float]


class _Cone:
    """One segment being grown from an already-rounded anchor knot (a leaf of the search).

    ``chain`` holds the knots before the anchor that are not committed yet (the path of choices
    that led here); ``committed`` says whether the anchor itself is. Their count is the leaf's
    depth: how many points it has spent that are not sent yet.
    """

    __slots__ = (
        "aele",
        "alat",
        "alon",
        "ax",
        "ay",
        "back",
        "chain",
        "committed",
        "ele",
        "first_t",
        "hist",
        "int_ele",
        "int_poly",
        "int_t",
        "pend",
        "poly",
        "ta",
    )

    def __init__(
        self,
        ta: int,
        ax: float,
        ay: float,
        alat: float,
        alon: float,
        aele: float | None,
        chain: tuple[_Knot, ...] = (),
        committed: bool = True,
    ) -> None:
        self.ta = ta
        self.ax = ax
        self.ay = ay
        self.alat = alat
        self.alon = alon
        self.aele = aele
        self.chain = chain
        self.committed = committed
        self.poly: Polygon | None = None  # feasible velocities given every fix fed so far
        self.int_t = ta  # the latest whole second all of whose fixes are in int_poly ...
        self.int_poly: Polygon | None = None  # ... and the velocities feasible up to it
        self.int_ele: float | None = aele
        self.ele: float | None = aele
        self.pend: list[_Pend] = []  # fixes after int_t (at most one second of them)
        self.first_t: float | None = None
        # Earlier whole seconds the segment could also end at: (second, polygon, elevation),
        # and the fixes after the oldest of them (a few seconds: O(1)).
        self.hist: list[tuple[int, Polygon | None, float | None]] = []
        self.back: list[_Pend] = []

    @property
    def depth(self) -> int:
        return len(self.chain) + (0 if self.committed else 1)

    def knot(self) -> _Knot:
        assert self.first_t is not None
        return (self.ta, self.alat, self.alon, self.aele, self.first_t)

    def root(self) -> _Knot | None:
        """The oldest uncommitted knot on this leaf's path."""
        if self.chain:
            return self.chain[0]
        return None if self.committed else self.knot()

    def pop_root(self) -> None:
        if self.chain:
            self.chain = self.chain[1:]
        else:
            self.committed = True

    def copy(self) -> _Cone:
        """A copy safe to keep while this one is fed (polygons are never mutated in place)."""
        c = _Cone(
            self.ta, self.ax, self.ay, self.alat, self.alon, self.aele, self.chain, self.committed
        )
        c.poly = self.poly
        c.int_t = self.int_t
        c.int_poly = self.int_poly
        c.int_ele = self.int_ele
        c.ele = self.ele
        c.pend = list(self.pend)
        c.first_t = self.first_t
        c.hist = list(self.hist)
        c.back = list(self.back)
        return c

    def to_json(self) -> list[Any]:
        return [
            self.ta,
            self.ax,
            self.ay,
            self.alat,
            self.alon,
            self.aele,
            [list(k) for k in self.chain],
            self.committed,
            self.poly,
            self.int_t,
            self.int_poly,
            self.int_ele,
            self.ele,
            [list(p) for p in self.pend],
            self.first_t,
            [list(h) for h in self.hist],
            [list(p) for p in self.back],
        ]

    @classmethod
    def from_json(cls, d: list[Any]) -> _Cone:
        chain = tuple((int(k[0]), k[1], k[2], k[3], k[4]) for k in d[6])
        c = cls(int(d[0]), d[1], d[2], d[3], d[4], d[5], chain, bool(d[7]))
        c.poly = d[8]
        c.int_t = int(d[9])
        c.int_poly = d[10]
        c.int_ele = d[11]
        c.ele = d[12]
        c.pend = [(p[0], p[1], p[2], p[3]) for p in d[13]]
        c.first_t = d[14]
        c.hist = [(int(h[0]), h[1], h[2]) for h in d[15]]
        c.back = [(p[0], p[1], p[2], p[3]) for p in d[16]]
        return c


class _Unreachable(Exception):
    """A buffered fix could not be re-fed to any new segment: undo the fix that caused it."""


def _scale_x(poly: Polygon | None, k: float) -> Polygon | None:
    if poly is None:
        return None
    out = list(poly)
    for i in range(0, len(out), 2):
        out[i] *= k
    return out


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
        lookahead: bool = True,
    ) -> None:
        if not max_error_m > 0.2:
            raise ValueError("max_error_m must be more than 0.2 m (the rounding margin)")
        if int(max_delay_s) < 1:
            raise ValueError("max_delay_s must be at least 1 s")
        self.max_error_m = float(max_error_m)
        self.max_delay_s = int(max_delay_s)
        # lookahead=False is greedy CISED-W (the centre of each region, no search): a baseline.
        self.lookahead = bool(lookahead)
        self._k_end = CANDIDATES_AT_END if lookahead else 1
        self._shift = EARLIER_ENDS if lookahead else 0
        self._beam = BEAM if lookahead else 1
        self._eps = self.max_error_m - ROUNDING_MARGIN_M - PROJECTION_MARGIN * self.max_error_m
        self.fixes_in = 0
        self.fixes_accepted = 0
        self.skipped_out_of_order = 0
        self.skipped_invalid = 0
        self.skipped_unreachable = 0
        self.points_out = 0
        # How each knot was settled (docs/sampler.md): every surviving path agreed on it, or
        # the delay bound came first and the best path decided, or the ride ended.
        self.knots_agreed = 0
        self.knots_due = 0
        self.knots_forced = 0  # due while nothing else was left to choose from
        self._last_t: float | None = None
        self._last_fix: _Pend | None = None
        self._frame: LocalFrame | None = None
        self._leaves: list[_Cone] = []
        self._first_after: float | None = None  # first fix after the last committed knot
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
        item: _Pend = (t, lat, lon, alt)
        if self._frame is None:
            self._start(item)
        else:
            backup = self._backup() if self._may_refeed_several(t) else None
            try:
                leaves = self._step(self._leaves, item, top_level=True)
                if leaves is None:
                    self.skipped_unreachable += 1
                    return []
                self._leaves = leaves
                if self._first_after is None:
                    self._first_after = t
                self._settle()
                self._enforce_deadline(t)
            except _Unreachable:
                if backup is None:  # pragma: no cover - excluded by _may_refeed_several
                    raise
                self._leaves, self._frame, self._first_after = backup
                self.skipped_unreachable += 1
                self._out = []
                return []
        self._last_t = t
        self._last_fix = item
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
        return any(c.pend and k <= c.int_t for c in self._leaves)

    def _backup(self) -> tuple[list[_Cone], LocalFrame | None, float | None]:
        return [c.copy() for c in self._leaves], self._frame, self._first_after

    def _start(self, fix: _Pend) -> None:
        """The first fix: kept as the first point, at its whole second."""
        t, lat, lon, alt = fix
        t0 = math.floor(t)
        alat, alon = _r6(lat), _r6(lon)
        self._frame = LocalFrame(alat, alon)
        self._emit(t0, alat, alon, alt)
        cone = _Cone(t0, 0.0, 0.0, alat, alon, alt)
        self._leaves = [cone]
        if t > t0:
            x, y = self._frame.to_xy(lat, lon)
            cone.poly = clip_disk(None, x / (t - t0), y / (t - t0), self._eps / (t - t0))
            cone.pend.append(fix)
            cone.first_t = t
            cone.ele = alt
            self._first_after = t

    def _emit(self, ts: int, lat: float, lon: float, ele: float | None) -> None:
        self._out.append(Point(timestamp=ts, lat=lat, lon=lon, ele=_r1(ele)))

    @staticmethod
    def _apply(cone: _Cone, fix: _Pend, poly: Polygon, shift: int) -> None:
        """Record that ``fix`` was fed to ``cone`` and left ``poly`` feasible."""
        t = fix[0]
        k = math.ceil(t) - 1
        if k > cone.int_t:
            if shift:
                if cone.int_t > cone.ta:
                    cone.hist.append((cone.int_t, cone.int_poly, cone.int_ele))
                    if len(cone.hist) > shift:
                        del cone.hist[0]
                    oldest = cone.hist[0][0]
                    cone.back = [f for f in cone.back if f[0] > oldest]
                else:
                    cone.back = []
            cone.int_t = k
            cone.int_poly = cone.poly
            cone.int_ele = cone.ele
            cone.pend = []
        cone.pend.append(fix)
        if shift:
            cone.back.append(fix)
        cone.poly = poly
        cone.ele = fix[3] if fix[3] is not None else cone.ele
        if cone.first_t is None:
            cone.first_t = t

    def _step(self, leaves: list[_Cone], fix: _Pend, *, top_level: bool) -> list[_Cone] | None:
        """Feed one fix to every leaf; expand the leaves whose segment ended. None: unreachable."""
        frame = self._frame
        assert frame is not None
        t, lat, lon, _alt = fix
        x, y = frame.to_xy(lat, lon)
        eps = self._eps
        k = math.ceil(t) - 1
        alive: list[_Cone] = []
        ended: list[_Cone] = []
        results: list[tuple[_Cone, Polygon]] = []
        for cone in leaves:
            tau = t - cone.ta
            if tau <= 0.0:
                alive.append(cone)
                continue
            poly = clip_disk(cone.poly, (x - cone.ax) / tau, (y - cone.ay) / tau, eps / tau)
            if poly:
                alive.append(cone)
                results.append((cone, poly))
            elif max(cone.int_t, k) > cone.ta:
                ended.append(cone)
                results.append((cone, poly))
        if not alive and not ended:
            if top_level:
                return None
            raise _Unreachable
        for cone, poly in results:
            self._apply(cone, fix, poly, self._shift)
        if not ended:
            return alive
        best_alive = min((c.depth for c in alive), default=1 << 30)
        parents = [c for c in ended if c.depth < best_alive]
        if not parents:
            return alive
        # Several leaves ending on the same fix: continue from the one whose region of closing
        # knots is largest (the others' paths are dropped).
        parent = max(parents, key=self._end_quality)
        children = self._children(parent, self._k_end)
        for end in parent.hist:
            children.extend(self._children(parent, CANDIDATES_PER_EARLIER_END, end))
        if top_level:  # (re-fed fixes run inside a top-level step, in its plane)
            self._reframe(children[0].alat, children[0].alon, alive, children)
        for item in parent.back if parent.hist else parent.pend:
            got = self._step(children, item, top_level=False)
            assert got is not None
            children = got
        merged = alive + children
        if len(merged) > self._beam:
            merged.sort(key=lambda c: (c.depth, -_quality(c.poly)))
            merged = merged[: self._beam]
        return merged

    # ------------------------------------------------------------------ knots

    @staticmethod
    def _end_quality(cone: _Cone) -> float:
        """Size of the region of closing knots at the cone's last whole second."""
        if cone.int_poly is None:
            return math.inf
        tau = cone.int_t - cone.ta
        return _quality(cone.int_poly) * tau * tau

    def _children(
        self,
        cone: _Cone,
        count: int,
        end: tuple[int, Polygon | None, float | None] | None = None,
    ) -> list[_Cone]:
        """Candidate knots closing ``cone``'s segment at its last whole second, as new leaves.

        The centre and up to ``count - 1`` corners of the region ``A + V (T - Ta)``, each
        rounded to 6 decimals: each is the anchor of a new leaf whose path is ``cone``'s.
        """
        frame = self._frame
        assert frame is not None
        end_t, vpoly, end_ele = (
            end if end is not None else (cone.int_t, cone.int_poly, cone.int_ele)
        )
        tau = end_t - cone.ta
        if vpoly is None:
            if end is not None:
                return []
            # No fix inside the segment: any knot closes it; start at the next fix.
            spots = [(cone.pend[0][1], cone.pend[0][2])]
        else:
            vp = vpoly
            gx, gy = centroid(vp)
            pts = [(gx, gy)]
            nv = len(vp) // 2
            want = min(count - 1, nv)
            for j in range(want):
                i = (j * nv) // want
                pts.append((vp[2 * i], vp[2 * i + 1]))
            spots = [frame.to_latlon(cone.ax + vx * tau, cone.ay + vy * tau) for vx, vy in pts]
        chain = cone.chain if cone.committed else (*cone.chain, cone.knot())
        seen: set[tuple[float, float]] = set()
        out = []
        for lat, lon in spots:
            key = (_r6(lat), _r6(lon))
            if key in seen:
                continue
            seen.add(key)
            x, y = frame.to_xy(key[0], key[1])
            out.append(_Cone(end_t, x, y, key[0], key[1], end_ele, chain, committed=False))
        return out

    def _reframe(self, lat0: float, lon0: float, *groups: list[_Cone]) -> None:
        """Move the plane's origin next to the data; re-express every leaf in it (exactly)."""
        old = self._frame
        assert old is not None
        new = LocalFrame(lat0, lon0)
        k = math.cos(math.radians(lat0)) / math.cos(math.radians(old.lat0))
        for group in groups:
            for c in group:
                c.ax, c.ay = new.to_xy(c.alat, c.alon)
                if k != 1.0:
                    c.poly = _scale_x(c.poly, k)
                    c.int_poly = _scale_x(c.int_poly, k)
        self._frame = new

    def _commit_root(self, knot: _Knot) -> None:
        """Send ``knot`` and drop every leaf whose path does not go through it."""
        self._emit(knot[0], knot[1], knot[2], knot[3])
        self._first_after = knot[4]
        kept = []
        for c in self._leaves:
            if c.root() == knot:
                c.pop_root()
                kept.append(c)
        self._leaves = kept

    def _settle(self) -> None:
        """Commit the oldest open knot for as long as every surviving path agrees on it."""
        while True:
            roots = {c.root() for c in self._leaves}
            if len(roots) != 1:
                return
            (knot,) = roots
            if knot is None:
                return
            self._commit_root(knot)
            self.knots_agreed += 1

    def _enforce_deadline(self, now: float) -> None:
        """Commit whatever the delay bound says must be committed by the fix at ``now``."""
        while self._first_after is not None and now >= self._first_after + self.max_delay_s:
            best = min(self._leaves, key=lambda c: (c.depth, -_quality(c.poly)))
            knot = best.root()
            if knot is not None:
                self._commit_root(knot)
                self.knots_due += 1
                self._settle()
                continue
            # Due with nothing open: close the growing segment at the latest whole second, at
            # the centre of its region of closing knots, and carry on from there.
            cone = best
            if now == math.ceil(now) and cone.poly:
                cone.int_t = int(now)
                cone.int_poly = cone.poly
                cone.int_ele = cone.ele
                cone.pend = []
            self._force_close(cone)
            self.knots_forced += 1

    def _force_close(self, cone: _Cone) -> None:
        frame = self._frame
        assert frame is not None
        assert cone.int_poly is not None
        tau = cone.int_t - cone.ta
        gx, gy = centroid(cone.int_poly)
        lat, lon = frame.to_latlon(cone.ax + gx * tau, cone.ay + gy * tau)
        lat, lon = _r6(lat), _r6(lon)
        self._emit(cone.int_t, lat, lon, cone.int_ele)
        self._frame = LocalFrame(lat, lon)
        nxt = _Cone(cone.int_t, 0.0, 0.0, lat, lon, cone.int_ele)
        self._first_after = cone.pend[0][0] if cone.pend else None
        leaves = [nxt]
        for item in cone.pend:
            got = self._step(leaves, item, top_level=False)
            assert got is not None
            leaves = got
        self._leaves = leaves
        self._settle()

    # ------------------------------------------------------------------ end of ride

    def flush(self) -> list[Point]:
        """End of ride: commit the rest, ending with a point at the last fix's second."""
        out = self._out = []
        if self._frame is None or self._last_fix is None:
            return out
        best = min(self._leaves, key=lambda c: (c.depth, self._miss(c)))
        for knot in best.chain:
            self._emit(knot[0], knot[1], knot[2], knot[3])
        if not best.committed:
            self._emit(best.ta, best.alat, best.alon, best.aele)
        if best.poly is not None:
            self._close_at_last_fix(best, self._last_fix)
        self.points_out += len(out)
        self._frame = None
        self._leaves = []
        self._last_fix = None
        return out

    def _miss(self, c: _Cone) -> float:
        """How far from the last fix this leaf's final knot would have to be."""
        last = self._last_fix
        frame = self._frame
        assert last is not None
        assert frame is not None
        if c.poly is None:
            return 0.0
        end_t = math.ceil(last[0])
        px, py = frame.to_xy(last[1], last[2])
        tau = end_t - c.ta
        vx, vy = nearest_point(c.poly, (px - c.ax) / tau, (py - c.ay) / tau)
        return math.hypot(c.ax + vx * tau - px, c.ay + vy * tau - py)

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
            "lookahead": self.lookahead,
            "counters": [
                self.fixes_in,
                self.fixes_accepted,
                self.skipped_out_of_order,
                self.skipped_invalid,
                self.skipped_unreachable,
                self.points_out,
                self.knots_agreed,
                self.knots_due,
                self.knots_forced,
            ],
            "last_t": self._last_t,
            "last_fix": None if self._last_fix is None else list(self._last_fix),
            "frame": None if self._frame is None else [self._frame.lat0, self._frame.lon0],
            "leaves": [c.to_json() for c in self._leaves],
            "first_after": self._first_after,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Sampler:
        """A sampler that continues exactly where the one that took ``snapshot`` was."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown sampler snapshot version {snapshot.get('version')!r}")
        s = cls(snapshot["max_error_m"], snapshot["max_delay_s"], lookahead=snapshot["lookahead"])
        (
            s.fixes_in,
            s.fixes_accepted,
            s.skipped_out_of_order,
            s.skipped_invalid,
            s.skipped_unreachable,
            s.points_out,
            s.knots_agreed,
            s.knots_due,
            s.knots_forced,
        ) = (int(v) for v in snapshot["counters"])
        s._last_t = snapshot["last_t"]
        lf = snapshot["last_fix"]
        s._last_fix = None if lf is None else (lf[0], lf[1], lf[2], lf[3])
        fr = snapshot["frame"]
        s._frame = None if fr is None else LocalFrame(fr[0], fr[1])
        s._leaves = [_Cone.from_json(c) for c in snapshot["leaves"]]
        s._first_after = snapshot["first_after"]
        return s
