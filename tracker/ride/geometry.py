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

# Resolution: measured on the benchmark rides, the compression hardly changes from 8 to 20
# sides (the search makes up for it) while the time per fix grows with the vertex count.
RING = 12  # sides of the polygon inscribed in a segment's first disk
ARC_STEP = 2.0 * math.pi / 16.0  # largest angle one inscribed chord may span
MAX_VERTICES = 20  # beyond this, drop the vertices whose removal loses the least area
_TWO_PI = 2.0 * math.pi
_RING_COS = [math.cos(_TWO_PI * k / RING) for k in range(RING)]
_RING_SIN = [math.sin(_TWO_PI * k / RING) for k in range(RING)]


def regular_polygon(cx: float, cy: float, r: float) -> Polygon:
    """The regular ``RING``-gon inscribed in the disk (centre ``cx, cy``, radius ``r``), CCW."""
    out: Polygon = []
    for c, s in zip(_RING_COS, _RING_SIN, strict=True):
        out.append(cx + r * c)
        out.append(cy + r * s)
    return out


def _arc(
    out: Polygon, cx: float, cy: float, r: float, x0: float, y0: float, x1: float, y1: float
) -> None:
    """Append the inner points of the CCW arc of the circle from (x0, y0) to (x1, y1).

    Both ends lie on the circle and are excluded. The points are spaced at most ``ARC_STEP``
    apart in angle and are made by rotating the start vector (two trigonometric calls per arc).
    """
    ux = x0 - cx
    uy = y0 - cy
    wx = x1 - cx
    wy = y1 - cy
    delta = math.atan2(ux * wy - uy * wx, ux * wx + uy * wy)
    if delta < 0.0:
        delta += _TWO_PI
    n = int(delta / ARC_STEP) + 1
    if n < 2:
        return
    step = delta / n
    c = math.cos(step)
    sn = math.sin(step)
    for _ in range(n - 1):
        ux, uy = ux * c - uy * sn, ux * sn + uy * c
        out.append(cx + ux)
        out.append(cy + uy)


def _dip(
    ax: float, ay: float, bx: float, by: float, cx: float, cy: float, r2: float
) -> tuple[float, float, float, float] | None:
    """Where an edge a→b whose ends both lie outside the circle dips into it: (entry x, y,
    exit x, y), or None. Both crossings must lie strictly inside the edge, which needs
    qb < 0 and -qb < qa: most edges are rejected on that before the square root."""
    ex = bx - ax
    ey = by - ay
    qa = ex * ex + ey * ey
    fx = ax - cx
    fy = ay - cy
    qb = fx * ex + fy * ey
    if qa > 0.0 and qb < 0.0 and -qb < qa:
        disc = qb * qb - qa * (fx * fx + fy * fy - r2)
        if disc >= 0.0:
            sq = math.sqrt(disc)
            c0 = (-qb - sq) / qa
            c1 = (-qb + sq) / qa
            if 0.0 < c0 < 1.0 and 0.0 < c1 < 1.0:
                return ax + ex * c0, ay + ey * c0, ax + ex * c1, ay + ey * c1
    return None


def clip_disk(poly: Polygon | None, cx: float, cy: float, r: float) -> Polygon:
    """``poly`` ∩ disk, conservatively, as a new CCW polygon (``[]`` when nothing is left).

    The boundary of the intersection is walked once: runs of vertices inside the disk are copied,
    each run of vertices outside is replaced by the circle arc (as inscribed chords) from the
    point where the boundary leaves the disk to the point where it comes back.

    Written for mypyc (the module is compiled at install, docs/ARCHITECTURE.md): plain indexed
    loops over the flat list, the inside flags as the bits of one int, no slices, temporary
    lists or local aliases of methods (which mypyc would call the slow, generic way); the
    arithmetic is the same expressions in the same order either way.
    """
    if poly is None:
        return regular_polygon(cx, cy, r)
    r2 = r * r
    n = len(poly) // 2
    inside = 0  # bit i: vertex i lies in the disk
    for i in range(n):
        dx = poly[2 * i] - cx
        dy = poly[2 * i + 1] - cy
        if dx * dx + dy * dy <= r2:
            inside |= 1 << i
    if inside == (1 << n) - 1:
        return poly
    if inside == 0:
        return _clip_no_vertex_inside(poly, cx, cy, r)
    # start at a vertex inside whose predecessor is outside
    start = 0
    while not (inside >> start & 1 and not inside >> (start - 1) % n & 1):
        start += 1
    out: Polygon = []
    i = start
    while True:
        # copy the run of vertices inside from i; j is the first outside
        j = i
        while inside >> j % n & 1:
            k = 2 * (j % n)
            out.append(poly[k])
            out.append(poly[k + 1])
            j += 1
        # leave the disk on edge (j-1, j) (the line crossings inlined for speed)
        k = 2 * ((j - 1) % n)
        ax = poly[k]
        ay = poly[k + 1]
        k = 2 * (j % n)
        ex = poly[k] - ax
        ey = poly[k + 1] - ay
        s1 = 1.0
        qa = ex * ex + ey * ey
        if not qa <= 0.0:
            fx = ax - cx
            fy = ay - cy
            qb = fx * ex + fy * ey
            disc = qb * qb - qa * (fx * fx + fy * fy - r2)
            if not disc < 0.0:
                s1 = min(max((-qb + math.sqrt(disc)) / qa, 0.0), 1.0)
        exx = ax + ex * s1
        exy = ay + ey * s1
        out.append(exx)
        out.append(exy)
        # walk the outside run j .. m-1; an edge between two outside vertices may dip in
        m = j
        while not inside >> m % n & 1:
            if not inside >> (m + 1) % n & 1:
                k = 2 * (m % n)
                k1 = 2 * ((m + 1) % n)
                dip = _dip(poly[k], poly[k + 1], poly[k1], poly[k1 + 1], cx, cy, r2)
                if dip is not None:
                    _arc(out, cx, cy, r, exx, exy, dip[0], dip[1])
                    out.extend(dip)
                    exx = dip[2]
                    exy = dip[3]
            m += 1
        # come back in on edge (m-1, m)
        k = 2 * ((m - 1) % n)
        ax = poly[k]
        ay = poly[k + 1]
        k = 2 * (m % n)
        ex = poly[k] - ax
        ey = poly[k + 1] - ay
        s0 = 0.0
        qa = ex * ex + ey * ey
        if not qa <= 0.0:
            fx = ax - cx
            fy = ay - cy
            qb = fx * ex + fy * ey
            disc = qb * qb - qa * (fx * fx + fy * fy - r2)
            if not disc < 0.0:
                s0 = min(max((-qb - math.sqrt(disc)) / qa, 0.0), 1.0)
        enx = ax + ex * s0
        eny = ay + ey * s0
        _arc(out, cx, cy, r, exx, exy, enx, eny)
        out.append(enx)
        out.append(eny)
        i = m
        if i % n == start:
            break
    if len(out) > 2 * MAX_VERTICES:
        out = reduce_vertices(out, MAX_VERTICES)
    return out


def _clip_no_vertex_inside(poly: Polygon, cx: float, cy: float, r: float) -> Polygon:
    """The rarer case with every vertex outside: the circle may still cross some edges."""
    r2 = r * r
    n = len(poly) // 2
    pieces: list[tuple[float, float, float, float]] = []  # (entry x, y, exit x, y) per edge
    for p in range(n):  # edge (p, p + 1 mod n)
        k = 2 * p
        k1 = 2 * ((p + 1) % n)
        dip = _dip(poly[k], poly[k + 1], poly[k1], poly[k1 + 1], cx, cy, r2)
        if dip is not None:
            pieces.append(dip)
    if not pieces:
        if point_in_polygon(poly, cx, cy):
            return regular_polygon(cx, cy, r)  # the disk lies wholly inside the polygon
        return []
    out: Polygon = []
    k = len(pieces)
    for idx, (ax, ay, bx, by) in enumerate(pieces):
        out.append(ax)
        out.append(ay)
        out.append(bx)
        out.append(by)
        nx, ny = pieces[(idx + 1) % k][0], pieces[(idx + 1) % k][1]
        _arc(out, cx, cy, r, bx, by, nx, ny)
    if len(out) < 6:
        return []
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
