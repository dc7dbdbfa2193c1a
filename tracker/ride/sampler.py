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
from bisect import bisect_right
from operator import itemgetter
from typing import Any

from tracker.geo import LocalFrame
from tracker.model import Fix, Point
from tracker.ride.geometry import (
    RING,
    Polygon,
    area,
    centroid,
    clip_disk,
    nearest_point,
    point_in_polygon,
    regular_polygon,
)

SNAPSHOT_VERSION = 1
ROUNDING_MARGIN_M = 0.09  # 6-decimal rounding (0.0556 m north + 0.0556 m east) + SNAP_S
SNAP_S = 2e-6  # a fix this close after a whole second counts as at it (float time noise)
PROJECTION_MARGIN = 0.003  # relative: what the local plane's scale error may cost, at most ...
MAX_SPEED_MPS = 340.0  # a fix needing more than this from the last one is a glitch: skipped
MAX_LINE_SPEED_MPS = 120.0  # no segment is drawn faster: see _SPEED_CAP
FRAME_TOLERANCE = 0.001  # ... since its origin moves when a fix's scale error exceeds this
# The search (docs/sampler.md): when a segment ends, candidate closing knots are the centre and
# corners of its region of closing knots at its last whole second, plus a few at each of the two
# whole seconds before; at most BEAM paths are followed at once.
CANDIDATES_AT_END = 9
EARLIER_ENDS = 2
CANDIDATES_PER_EARLIER_END = 3
BEAM = 9
# Undo (see Sampler._rewind): a copy of the state every CHECKPOINT_EVERY fixes, replayed on the
# rare fix that has to be undone, instead of a copy of every leaf before every fix.
CHECKPOINT_EVERY = 32
_COUNTERS = (
    "fixes_in",
    "fixes_accepted",
    "skipped_out_of_order",
    "skipped_invalid",
    "skipped_unreachable",
    "skipped_jump",
    "points_out",
    "knots_agreed",
    "knots_due",
    "knots_forced",
)

# A buffered fix: time (unix seconds), latitude, longitude, altitude or None.
_Pend = tuple[float, float, float, float | None]
_time_of = itemgetter(0)


def _quality(poly: Polygon | None) -> float:
    """How much freedom a leaf has left: the area of its feasible velocities."""
    if not poly:
        return math.inf if poly is None else 0.0
    return area(poly)


# Every cone starts from this polygon: no segment between knots moves faster than
# MAX_LINE_SPEED_MPS. With knots on whole seconds and fixes between them, one glitch a fraction of a
# second after a knot would otherwise need a segment at hundreds of m/s, whose next knot lands far
# off the ride, and the error grows at every knot after it; with the cap such a fix is
# unreachable instead, and skipped (docs/sampler.md, Limits).
_SPEED_CAP = regular_polygon(0.0, 0.0, MAX_LINE_SPEED_MPS)
# A disk this far inside _SPEED_CAP (centre distance plus radius, with a wide margin for rounding
# below its inradius) crosses none of its edges and contains its centre: clipping the cap by it
# gives regular_polygon of the disk itself, which _first_clip returns without the edge walk.
_CAP_INSIDE = 0.999 * MAX_LINE_SPEED_MPS * math.cos(math.pi / RING)


def _first_clip(cx: float, cy: float, r: float) -> Polygon:
    """``clip_disk(_SPEED_CAP, cx, cy, r)``, the same result, cheaper for the common case."""
    if math.hypot(cx, cy) + r < _CAP_INSIDE:
        return regular_polygon(cx, cy, r)
    return clip_disk(_SPEED_CAP, cx, cy, r)


def _room(cone: _Cone, now: float) -> float:
    """A leaf's room at time ``now`` (area of its positions then), in 2 % steps so that leaves
    alike up to rounding tie and the earlier candidate (the centre) wins."""
    a = _quality(cone.poly) * (now - cone.ta) ** 2
    return math.inf if a == math.inf else round(50.0 * math.log(max(a, 1e-12)))


def _second_before(t: float) -> int:
    """The last whole second before the fix time ``t`` (a time within SNAP_S after a whole
    second counts as at it: 1.0000002 is second 1, whose last second before is 0)."""
    return math.ceil(t - SNAP_S) - 1


def _on_second(t: float) -> bool:
    return t - math.floor(t) <= SNAP_S


def _r6(v: float) -> float:
    return round(v, 6)


def _r1(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


# Where a segment can end: whole second, feasible velocities, elevation, and the latest fix at or
# before that second (with the first fix after it, it says where the ride was at that second).
_End = tuple[int, Polygon | None, float | None, _Pend | None]


def _pend(d: list[Any] | None) -> _Pend | None:
    return None if d is None else (d[0], d[1], d[2], d[3])


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
        "int_before",
        "int_ele",
        "int_poly",
        "int_t",
        "last",
        "off",
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
        self.off = 0.0  # how far the anchor is from where the ride was then (a tie-break)
        # Earlier whole seconds the segment could also end at: (second, polygon, elevation),
        # and the fixes after the oldest of them (a few seconds: O(1)).
        self.hist: list[_End] = []
        self.last: _Pend | None = None  # the latest fix fed
        self.int_before: _Pend | None = None  # the latest fix at or before int_t
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
        c.off = self.off
        c.hist = list(self.hist)
        c.last = self.last
        c.int_before = self.int_before
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
            [[h[0], h[1], h[2], None if h[3] is None else list(h[3])] for h in self.hist],
            [list(p) for p in self.back],
            None if self.last is None else list(self.last),
            None if self.int_before is None else list(self.int_before),
            self.off,
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
        c.hist = [(int(h[0]), h[1], h[2], _pend(h[3])) for h in d[15]]
        c.back = [(p[0], p[1], p[2], p[3]) for p in d[16]]
        c.last = _pend(d[17])
        c.int_before = _pend(d[18])
        c.off = d[19]
        return c


# What Sampler._rewind starts from: leaves, plane, delay clock, last fix time, last fix.
_Checkpoint = tuple[list[_Cone], LocalFrame | None, float | None, float | None, _Pend | None]


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
        self._shift = EARLIER_ENDS if lookahead else 1  # (greedy: only to end before gaps)
        self._beam = BEAM if lookahead else 1
        self._eps = self.max_error_m - ROUNDING_MARGIN_M - PROJECTION_MARGIN * self.max_error_m
        self.fixes_in = 0
        self.fixes_accepted = 0
        self.skipped_out_of_order = 0
        self.skipped_invalid = 0
        self.skipped_unreachable = 0
        self.skipped_jump = 0
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
        # Undo: the state as it was before the fixes in _log (None: take one at the next fix).
        self._checkpoint: _Checkpoint | None = None
        self._log: list[Fix] = []
        self._replaying = False

    # ------------------------------------------------------------------ feeding

    def feed(self, fix: Fix) -> list[Point]:
        """Take one fix; return the points committed because it arrived (usually none)."""
        if not self._replaying:
            if self._checkpoint is None or len(self._log) >= CHECKPOINT_EVERY:
                self._checkpoint = self._save()
                self._log = []
            self._log.append(fix)
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
            if self._frame is not None and math.isfinite(t) and t > (self._last_t or t):
                self._out = []
                return self._skip(t, advance=False)  # its time counts for the delay bound
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
            if self._is_jump(t, lat, lon):
                self.skipped_jump += 1
                return self._skip(t)
            reframed = self._frame.scale_error(lat) > FRAME_TOLERANCE
            if reframed:
                # far north or south of the plane's origin (a long ride, or a wild fix): move
                # the origin so distances near this fix are measured true
                self._reframe(lat, lon, self._leaves)
            # A fix that cannot be taken without breaking the bound (or that would drive the
            # knots off the map) is skipped, the state as it was here (_rewind rebuilds it; a
            # replay, which has no checkpoint to go back to, copies it first instead).
            backup = self._backup() if self._replaying else None
            try:
                leaves = self._step(self._leaves, item, top_level=True)
                if leaves is None:
                    self.skipped_unreachable += 1
                    return self._skip(t)
                self._leaves = leaves
                if self._first_after is None:
                    self._first_after = t
                self._settle()
                self._enforce_deadline(t)
            except (_Unreachable, ArithmeticError, ValueError):
                if backup is None:
                    self._rewind(out, (lat, lon) if reframed else None)
                else:
                    self._leaves, self._frame, self._first_after = backup
                del out[:]
                self.skipped_unreachable += 1
                return self._skip(t)
        self._last_t = t
        self._last_fix = item
        self.fixes_accepted += 1
        self.points_out += len(out)
        return out

    def _is_jump(self, t: float, lat: float, lon: float) -> bool:
        """Whether reaching this fix from the last one needs more than MAX_SPEED_MPS.

        The sampler keeps every fix it accepts within the bound, so one wild fix would bend the
        line far off the ride for a segment (or, with sub-second fixes and a tiny delay bound,
        for several): such fixes are a receiver glitch, and the filters upstream drop them too.
        """
        last = self._last_fix
        if last is None:
            return False
        frame = self._frame
        assert frame is not None
        x0, y0 = frame.to_xy(last[1], last[2])
        x1, y1 = frame.to_xy(lat, lon)
        return math.hypot(x1 - x0, y1 - y0) - 2 * self.max_error_m > MAX_SPEED_MPS * (t - last[0])

    def _skip(self, t: float, *, advance: bool = True) -> list[Point]:
        """Skip this fix; its time still counts for the delay bound."""
        if advance:
            self._last_t = t
        out = self._out
        backup = self._backup()
        try:
            self._enforce_deadline(t)
        except (_Unreachable, ArithmeticError, ValueError):
            # (needs a sliver thinner than the rounding; the next fix enforces the deadline)
            self._leaves, self._frame, self._first_after = backup
            del out[:]
        self.points_out += len(out)
        return out

    def _backup(self) -> tuple[list[_Cone], LocalFrame | None, float | None]:
        return [c.copy() for c in self._leaves], self._frame, self._first_after

    def _save(self) -> _Checkpoint:
        return (
            [c.copy() for c in self._leaves],
            self._frame,
            self._first_after,
            self._last_t,
            self._last_fix,
        )

    def _rewind(self, out: list[Point], reframe: tuple[float, float] | None) -> None:
        """Put the leaves, plane and delay clock back as they were before the current fix.

        The state is a pure function of the fixes fed, so the checkpoint plus a replay of the
        fixes fed since (outputs dropped) is exactly the state before this fix, which is then
        moved to this fix's plane if the fix had moved it. The counters keep the values they
        have now (as the copy taken before every fix used to: a failed attempt's settled knots
        still count), and ``out`` stays this call's output list.
        """
        counters = [getattr(self, name) for name in _COUNTERS]
        checkpoint = self._checkpoint
        log = self._log
        assert checkpoint is not None
        assert log
        self._checkpoint = None  # (its leaves are consumed by the replay)
        self._log = []
        leaves, self._frame, self._first_after, self._last_t, self._last_fix = checkpoint
        self._leaves = leaves
        self._replaying = True
        try:
            for fix in log[:-1]:
                self.feed(fix)
        finally:
            self._replaying = False
        if reframe is not None:
            self._reframe(reframe[0], reframe[1], self._leaves)
        for name, value in zip(_COUNTERS, counters, strict=True):
            setattr(self, name, value)
        self._out = out

    def _start(self, fix: _Pend) -> None:
        """The first fix: kept as the first point, at its whole second."""
        t, lat, lon, alt = fix
        t0 = math.floor(t)
        alat, alon = _r6(lat), _r6(lon)
        self._frame = LocalFrame(alat, alon)
        self._emit(t0, alat, alon, alt)
        cone = _Cone(t0, 0.0, 0.0, alat, alon, alt)
        self._leaves = [cone]
        if t - t0 > SNAP_S:
            x, y = self._frame.to_xy(lat, lon)
            cone.poly = clip_disk(_SPEED_CAP, x / (t - t0), y / (t - t0), self._eps / (t - t0))
            cone.pend.append(fix)
            cone.last = fix
            cone.first_t = t
            cone.ele = alt
            self._first_after = t

    def _emit(self, ts: int, lat: float, lon: float, ele: float | None) -> None:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            # knots driven off the map (fixes far too noisy for the bound between whole
            # seconds: docs/sampler.md, Limits): refuse, the fix that led here is skipped
            raise _Unreachable
        self._out.append(Point(timestamp=ts, lat=lat, lon=lon, ele=_r1(ele)))

    @staticmethod
    def _apply(cone: _Cone, fix: _Pend, poly: Polygon, shift: int, k: int) -> None:
        """Record that ``fix`` was fed to ``cone`` and left ``poly`` feasible (``k`` is
        ``_second_before(fix[0])``, the same for every leaf: computed once per fix)."""
        if k > cone.int_t:
            if shift:
                # the earlier seconds it could end at: the last one, and any whole seconds
                # without a fix between it and k (they share the polygon before this fix)
                # (after a gap, the second just after the last fix before it is always one of
                # them: ending in the middle of a gap would extrapolate the segment across it)
                hist = cone.hist
                if cone.int_t > cone.ta:
                    hist.append((cone.int_t, cone.int_poly, cone.int_ele, cone.int_before))
                if cone.int_t + 1 < k:
                    gap = [(cone.int_t + 1, cone.poly, cone.ele, cone.last)]
                    if k - 1 > cone.int_t + 1:
                        gap.append((k - 1, cone.poly, cone.ele, cone.last))
                    hist[:] = gap[:shift] if len(gap) >= shift else (hist + gap)[-shift:]
                elif len(hist) > shift:
                    del hist[: len(hist) - shift]
                back = cone.back
                if hist:
                    # (back is in time order: the fixes at or before the oldest are a prefix)
                    i = bisect_right(back, hist[0][0], key=_time_of)
                    if i:
                        del back[:i]
                else:
                    back.clear()
            cone.int_t = k
            cone.int_poly = cone.poly
            cone.int_ele = cone.ele
            cone.int_before = cone.last
            cone.pend = []
        cone.pend.append(fix)
        cone.last = fix
        if shift:
            cone.back.append(fix)
        cone.poly = poly
        cone.ele = fix[3] if fix[3] is not None else cone.ele
        if cone.first_t is None:
            cone.first_t = fix[0]

    def _step(self, leaves: list[_Cone], fix: _Pend, *, top_level: bool) -> list[_Cone] | None:
        """Feed one fix to every leaf; expand the leaves whose segment ended. None: unreachable."""
        frame = self._frame
        assert frame is not None
        t, lat, lon, _alt = fix
        x, y = frame.to_xy(lat, lon)
        eps = self._eps
        k = _second_before(t)
        alive: list[_Cone] = []
        ended: list[_Cone] = []
        results: list[tuple[_Cone, Polygon]] = []
        for cone in leaves:
            tau = t - cone.ta
            if tau <= SNAP_S:
                alive.append(cone)
                continue
            cpoly = cone.poly
            if cpoly is None:
                poly = _first_clip((x - cone.ax) / tau, (y - cone.ay) / tau, eps / tau)
            else:
                poly = clip_disk(cpoly, (x - cone.ax) / tau, (y - cone.ay) / tau, eps / tau)
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
        shift = self._shift
        for cone, poly in results:
            self._apply(cone, fix, poly, shift, k)
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
            got = self._children(parent, CANDIDATES_PER_EARLIER_END, end)
            if not got and parent.int_poly is not None:
                # every knot at that second is far from the ride: take those on lines that also
                # cover the fixes after it, which pass near the ride there
                safer = (end[0], parent.int_poly, end[2], end[3])
                got = self._children(parent, CANDIDATES_PER_EARLIER_END, safer)
            children.extend(got)
        if not children:  # no knot near the ride anywhere: the nearest one, at the best second
            options = [self._children(parent, 1, nearest=True)]
            options += [self._children(parent, 1, end, nearest=True) for end in parent.hist]
            children = min((o for o in options if o), key=lambda o: o[0].off, default=options[0])
        if top_level:  # (re-fed fixes run inside a top-level step, in its plane)
            self._reframe(children[0].alat, children[0].alon, alive, children)
        for item in parent.back if parent.hist else parent.pend:
            fed = self._step(children, item, top_level=False)
            assert fed is not None
            children = fed
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
        end: _End | None = None,
        *,
        nearest: bool = False,
    ) -> list[_Cone]:
        """Candidate knots closing ``cone``'s segment at its last whole second, as new leaves.

        The centre and up to ``count - 1`` corners of the region ``A + V (T - Ta)``, each
        rounded to 6 decimals: each is the anchor of a new leaf whose path is ``cone``'s.
        """
        frame = self._frame
        assert frame is not None
        if end is None:
            end = (cone.int_t, cone.int_poly, cone.int_ele, cone.int_before)
            after = cone.pend[0] if cone.pend else None
        else:
            after = next((f for f in cone.back if f[0] > end[0] + SNAP_S), None)
        end_t, vpoly, end_ele, before = end
        ride: tuple[float, float] | None = None
        tau = end_t - cone.ta
        if vpoly is None:
            if end_t != cone.int_t:
                return []
            # No fix inside the segment: any knot closes it; start at the next fix.
            spots = [(cone.pend[0][1], cone.pend[0][2])]
        else:
            vp = vpoly
            if before is not None and after is not None and end_t - before[0] > SNAP_S:
                # Prefer knots near where the ride was at end_t (between the fixes around it):
                # the bound only speaks of fix times, and a knot far off between them is legal
                # but draws a spike, and the next segment would have to bend back from it.
                s = (end_t - before[0]) / (after[0] - before[0])
                bx, by = frame.to_xy(before[1], before[2])
                qx, qy = frame.to_xy(after[1], after[2])
                wx = bx + (qx - bx) * s - cone.ax
                wy = by + (qy - by) * s - cone.ay
                ride = (cone.ax + wx, cone.ay + wy)
                # (half the bound: a fix just after the knot must stay reachable at sane speed)
                near = clip_disk(vp, wx / tau, wy / tau, 0.5 * self._eps / tau)
                if not near:  # ... or at least so near that the rounded knot keeps it so
                    slack = self._eps - 2 * ROUNDING_MARGIN_M
                    near = clip_disk(vp, wx / tau, wy / tau, slack / tau) if slack > 0 else []
                if not near:
                    if not nearest:
                        return []  # none near it: no candidates at this second
                    count = 1  # the one knot nearest to it
                    gx, gy = nearest_point(vp, wx / tau, wy / tau)
                vp = near
            if vp:
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
            child = _Cone(end_t, x, y, key[0], key[1], end_ele, chain, committed=False)
            if ride is not None:
                child.off = math.hypot(x - ride[0], y - ride[1])
            out.append(child)
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
        while self._leaves:
            first, *rest = self._leaves
            knot = first.root()
            if knot is None:
                return
            for c in rest:
                if c.root() != knot:
                    return
            self._commit_root(knot)
            self.knots_agreed += 1

    def _enforce_deadline(self, now: float) -> None:
        """Commit whatever the delay bound says must be committed by the fix at ``now``."""
        while self._first_after is not None and now >= self._first_after + self.max_delay_s:
            # the path with the fewest open knots, then the most room (in position, at ``now``)
            best = min(self._leaves, key=lambda c: (c.depth, -_room(c, now), c.off))
            knot = best.root()
            if knot is not None:
                self._commit_root(knot)
                self.knots_due += 1
                self._settle()
                continue
            # Due with nothing open: close the growing segment now, without lookahead.
            self._force_close(best, now)
            self.knots_forced += 1

    def _force_close(self, cone: _Cone, now: float) -> None:
        """Close ``cone``'s segment at the latest whole second, nearest to where the ride was.

        The knot is taken on a line that covers every fix so far (``cone.poly``), so the fixes
        after it are covered by the same line and re-feeding them cannot fail. Taking it
        nearest to the ride at that second, rather than at the centre, keeps knots from drifting
        away when the fixes lie between whole seconds and the delay bound is tiny (each knot would
        otherwise extrapolate the last one's error further).
        """
        frame = self._frame
        assert frame is not None
        assert cone.poly
        end_t = _second_before(now) + (1 if _on_second(now) else 0)
        last = cone.last
        assert last is not None
        if last[0] <= end_t + SNAP_S:
            # ``now`` was skipped: no need to reach past the last fix taken (the delay bound
            # only asks to cover fixes up to now - max_delay_s, all at or before it)
            end_t = _second_before(last[0]) + 1
        tau = end_t - cone.ta
        # where the ride was at end_t: between the fixes around it (or at the latest one)
        pend = [f for f in cone.pend if f[0] > end_t + SNAP_S]
        px, py = frame.to_xy(last[1], last[2])
        if pend:
            before = cone.int_before if last[0] > end_t + SNAP_S else last
            bt, bx, by = (
                (cone.ta, cone.ax, cone.ay)
                if before is None
                else (before[0], *frame.to_xy(before[1], before[2]))
            )
            qx, qy = frame.to_xy(pend[0][1], pend[0][2])
            w = (end_t - bt) / (pend[0][0] - bt)
            px, py = bx + (qx - bx) * w, by + (qy - by) * w
        ele = cone.int_ele if pend else cone.ele
        first = True
        for vx, vy in (
            nearest_point(cone.poly, (px - cone.ax) / tau, (py - cone.ay) / tau),
            centroid(cone.poly),
        ):
            lat, lon = frame.to_latlon(cone.ax + vx * tau, cone.ay + vy * tau)
            lat, lon = _r6(lat), _r6(lon)
            saved = self._frame
            self._frame = LocalFrame(lat, lon)
            leaves = [_Cone(end_t, 0.0, 0.0, lat, lon, ele)]
            try:
                for item in pend:
                    got = self._step(leaves, item, top_level=False)
                    assert got is not None
                    leaves = got
            except _Unreachable:
                self._frame = saved
                if not first:
                    raise
                first = False
                continue
            break
        self._emit(end_t, lat, lon, ele)
        self._first_after = pend[0][0] if pend else None
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
            mark = len(out)
            try:
                self._close_at_last_fix(best, self._last_fix)
            except (_Unreachable, ArithmeticError, ValueError):
                # the knots have drifted off (docs/sampler.md, Limits): end at the last fix
                del out[mark:]
                t, lat, lon, alt = self._last_fix
                end_t = _second_before(t) + 1
                if not out or out[-1].timestamp < end_t:
                    out.append(Point(timestamp=end_t, lat=_r6(lat), lon=_r6(lon), ele=_r1(alt)))
        self.points_out += len(out)
        self._frame = None
        self._leaves = []
        self._last_fix = None
        self._checkpoint = None
        return out

    def _miss(self, c: _Cone) -> float:
        """How far from the last fix this leaf's final knot would have to be."""
        last = self._last_fix
        frame = self._frame
        assert last is not None
        assert frame is not None
        if c.poly is None:
            return 0.0
        end_t = _second_before(last[0]) + 1
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
        end_t = _second_before(t) + 1
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

    def counters(self) -> tuple[int, ...]:
        """Every counter, in the order a snapshot stores them (``restore`` reads them back)."""
        return (
            self.fixes_in,
            self.fixes_accepted,
            self.skipped_out_of_order,
            self.skipped_invalid,
            self.skipped_unreachable,
            self.skipped_jump,
            self.points_out,
            self.knots_agreed,
            self.knots_due,
            self.knots_forced,
        )

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (bounded size); ``restore`` continues from it."""
        return {
            "version": SNAPSHOT_VERSION,
            "max_error_m": self.max_error_m,
            "max_delay_s": self.max_delay_s,
            "lookahead": self.lookahead,
            "counters": list(self.counters()),
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
            s.skipped_jump,
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
