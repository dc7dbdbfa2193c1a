"""Convex polygons clipped by disks: the feasible-velocity regions of the sampler's cones.

A polygon is a flat list ``[x0, y0, x1, y1, ...]`` of its vertices in counter-clockwise order
(flat lists of floats are the cheapest shape in CPython and serialise to JSON as they are).
``None`` stands for the whole plane (a cone that no fix has constrained yet); ``[]`` is empty.

Every operation here is *conservative*: the polygon returned always lies inside the exact set
(the intersection of the disks), never outside it. Circle arcs are replaced by inscribed chords,
and vertices are only ever dropped, which shrinks a convex polygon. So any point the sampler picks
from a polygon satisfies every disk that built it, which is what makes the error bound hold; the
price is a sliver of feasible area (at most ``1 - cos(step / 2)`` of the radius per arc).
"""

from __future__ import annotations

import math

Polygon = list[float]

ARC_STEP = 2.0 * math.pi / 20.0  # largest angle one inscribed chord may span
MAX_VERTICES = 28  # beyond this, drop the vertices whose removal loses the least area
_TWO_PI = 2.0 * math.pi
_RING_COS = [math.cos(_TWO_PI * k / 20) for k in range(20)]
_RING_SIN = [math.sin(_TWO_PI * k / 20) for k in range(20)]


def regular_polygon(cx: float, cy: float, r: float) -> Polygon:
    """The regular 20-gon inscribed in the disk (centre ``cx, cy``, radius ``r``), CCW."""
    out: Polygon = []
    for c, s in zip(_RING_COS, _RING_SIN, strict=True):
        out.append(cx + r * c)
        out.append(cy + r * s)
    return out


def _arc(out: Polygon, cx: float, cy: float, r: float, a0: float, a1: float) -> None:
    """Append the inner points of the CCW arc from angle ``a0`` to ``a1`` (both ends excluded)."""
    delta = (a1 - a0) % _TWO_PI
    n = int(delta / ARC_STEP) + 1
    if n < 2:
        return
    step = delta / n
    for k in range(1, n):
        a = a0 + step * k
        out.append(cx + r * math.cos(a))
        out.append(cy + r * math.sin(a))


def clip_disk(poly: Polygon | None, cx: float, cy: float, r: float) -> Polygon:
    """``poly`` ∩ disk, conservatively, as a new CCW polygon (``[]`` when nothing is left)."""
    if poly is None:
        return regular_polygon(cx, cy, r)
    n = len(poly)
    r2 = r * r
    inside: list[bool] = []
    all_in = True
    for i in range(0, n, 2):
        dx = poly[i] - cx
        dy = poly[i + 1] - cy
        ok = dx * dx + dy * dy <= r2
        inside.append(ok)
        if not ok:
            all_in = False
    if all_in:
        return poly
    # Walk the edges; record the boundary of the intersection, marking where it leaves the disk
    # (an exit) so the arc back to the next entry can be filled in afterwards.
    pts: Polygon = []
    exits: list[int] = []  # vertex numbers (in pts) of the points where the boundary leaves
    entries: set[int] = set()  # ... and where it comes back into the disk
    m = n // 2
    for k in range(m):
        i = 2 * k
        j = (i + 2) % n
        ax = poly[i]
        ay = poly[i + 1]
        ina = inside[k]
        inb = inside[(k + 1) % m]
        if ina:
            pts.append(ax)
            pts.append(ay)
            if inb:
                continue
        ex = poly[j] - ax
        ey = poly[j + 1] - ay
        fx = ax - cx
        fy = ay - cy
        qa = ex * ex + ey * ey
        if qa <= 0.0:
            continue
        qb = fx * ex + fy * ey
        qc = fx * fx + fy * fy - r2
        disc = qb * qb - qa * qc
        if disc < 0.0:
            continue
        sq = math.sqrt(disc)
        s0 = (-qb - sq) / qa
        s1 = (-qb + sq) / qa
        if ina:  # leaving the disk on this edge
            s = min(max(s1, 0.0), 1.0)
            exits.append(len(pts) // 2)
            pts.append(ax + ex * s)
            pts.append(ay + ey * s)
        elif inb:  # entering
            s = min(max(s0, 0.0), 1.0)
            entries.add(len(pts) // 2)
            pts.append(ax + ex * s)
            pts.append(ay + ey * s)
        elif 0.0 < s0 < 1.0 and 0.0 < s1 < 1.0:  # passing through
            entries.add(len(pts) // 2)
            pts.append(ax + ex * s0)
            pts.append(ay + ey * s0)
            exits.append(len(pts) // 2)
            pts.append(ax + ex * s1)
            pts.append(ay + ey * s1)
    if not pts:
        if point_in_polygon(poly, cx, cy):
            return regular_polygon(cx, cy, r)  # the disk lies wholly inside the polygon
        return []
    if len(pts) < 6:
        return []  # a point or a sliver: treat as empty (conservative)
    if not exits:
        out = pts
    else:
        out = []
        count = len(pts) // 2
        ex_set = set(exits)
        for v in range(count):
            x = pts[2 * v]
            y = pts[2 * v + 1]
            out.append(x)
            out.append(y)
            w = (v + 1) % count
            if v in ex_set and w in entries:
                _arc(
                    out,
                    cx,
                    cy,
                    r,
                    math.atan2(y - cy, x - cx),
                    math.atan2(pts[2 * w + 1] - cy, pts[2 * w] - cx),
                )
    if len(out) > 2 * MAX_VERTICES:
        out = reduce_vertices(out, MAX_VERTICES)
    return out


def reduce_vertices(poly: Polygon, limit: int) -> Polygon:
    """Drop vertices (each losing the least area) until at most ``limit`` remain: a subset."""
    xs = poly[0::2]
    ys = poly[1::2]
    while len(xs) > limit:
        n = len(xs)
        best = 0
        best_area = math.inf
        for i in range(n):
            ax, ay = xs[i - 1], ys[i - 1]
            bx, by = xs[i], ys[i]
            cx, cy = xs[(i + 1) % n], ys[(i + 1) % n]
            a = abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
            if a < best_area:
                best_area = a
                best = i
        del xs[best]
        del ys[best]
    out: Polygon = []
    for x, y in zip(xs, ys, strict=True):
        out.append(x)
        out.append(y)
    return out


def point_in_polygon(poly: Polygon, x: float, y: float) -> bool:
    """Whether (x, y) lies in the closed convex CCW polygon."""
    n = len(poly)
    if n < 6:
        return False
    for i in range(0, n, 2):
        j = (i + 2) % n
        ax = poly[i]
        ay = poly[i + 1]
        if (poly[j] - ax) * (y - ay) - (poly[j + 1] - ay) * (x - ax) < 0.0:
            return False
    return True


def area(poly: Polygon) -> float:
    """Area of the CCW polygon (0 for fewer than three vertices)."""
    n = len(poly)
    s = 0.0
    for i in range(0, n, 2):
        j = (i + 2) % n
        s += poly[i] * poly[j + 1] - poly[j] * poly[i + 1]
    return s / 2.0


def centroid(poly: Polygon) -> tuple[float, float]:
    """Area centroid of a convex polygon (the vertex mean when the area vanishes)."""
    n = len(poly)
    a2 = 0.0
    sx = 0.0
    sy = 0.0
    for i in range(0, n, 2):
        j = (i + 2) % n
        cr = poly[i] * poly[j + 1] - poly[j] * poly[i + 1]
        a2 += cr
        sx += (poly[i] + poly[j]) * cr
        sy += (poly[i + 1] + poly[j + 1]) * cr
    if abs(a2) < 1e-18:
        m = n // 2
        return sum(poly[0::2]) / m, sum(poly[1::2]) / m
    return sx / (3.0 * a2), sy / (3.0 * a2)


def nearest_point(poly: Polygon, x: float, y: float) -> tuple[float, float]:
    """The point of the convex polygon closest to (x, y)."""
    if point_in_polygon(poly, x, y):
        return x, y
    n = len(poly)
    best = (poly[0], poly[1])
    best_d = math.inf
    for i in range(0, n, 2):
        j = (i + 2) % n
        ax = poly[i]
        ay = poly[i + 1]
        ex = poly[j] - ax
        ey = poly[j + 1] - ay
        ll = ex * ex + ey * ey
        s = 0.0 if ll <= 0.0 else min(max(((x - ax) * ex + (y - ay) * ey) / ll, 0.0), 1.0)
        px = ax + ex * s
        py = ay + ey * s
        d = (px - x) ** 2 + (py - y) ** 2
        if d < best_d:
            best_d = d
            best = (px, py)
    return best
