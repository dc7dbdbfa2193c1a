"""``GET /_emulator/``: the activities as an HTML page, each track drawn as an SVG polyline.

No map tiles (no internet): the track is projected onto a plain box (equirectangular, scaled by
the cosine of the mean latitude so shapes are not squashed), with the heart rate drawn as a second
line under it when the activity has samples. The page reloads itself every two seconds while an
activity is live, so a demo ride can be watched as it arrives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from tracker.emulator.store import StoredActivity, StoredPoint

TRACK_COLOUR = "#dc143c"  # crimson: the browser test looks for these pixels
HR_COLOUR = "#1f5fbf"
START_COLOUR = "#2a9d3a"
EARTH_RADIUS_M = 6_371_008.8
TRACK_BOX = (640, 400)
HR_BOX = (640, 120)
PAD = 12
REFRESH_S = 2


def track_polyline(activity: StoredActivity, width: int, height: int, pad: int = PAD) -> str:
    """The ``points`` attribute of the track's polyline, fitted into width×height."""
    pts = activity.points
    if not pts:
        return ""
    mean_lat = sum(p.lat for p in pts) / len(pts)
    kx = math.cos(math.radians(mean_lat))
    xs = [p.lon * kx for p in pts]
    ys = [p.lat for p in pts]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    scale = min((width - 2 * pad), (height - 2 * pad)) / span
    x0 = min(xs) - ((width - 2 * pad) / scale - (max(xs) - min(xs))) / 2
    y1 = max(ys) + ((height - 2 * pad) / scale - (max(ys) - min(ys))) / 2
    return " ".join(
        f"{pad + (x - x0) * scale:.1f},{pad + (y1 - y) * scale:.1f}"
        for x, y in zip(xs, ys, strict=True)
    )


def hr_polyline(activity: StoredActivity, width: int, height: int, pad: int = PAD) -> str:
    """Heart rate against time, fitted into width×height (higher rate = higher on the page)."""
    samples = activity.hr
    if not samples:
        return ""
    t0, t1 = samples[0].timestamp, samples[-1].timestamp
    lo = min(s.hr for s in samples)
    hi = max(s.hr for s in samples)
    tspan = max(t1 - t0, 1)
    hspan = max(hi - lo, 1)
    return " ".join(
        f"{pad + (s.timestamp - t0) / tspan * (width - 2 * pad):.1f},"
        f"{height - pad - (s.hr - lo) / hspan * (height - 2 * pad):.1f}"
        for s in samples
    )


def track_length_m(points: Sequence[StoredPoint]) -> float:
    """Summed great-circle distance (haversine) along the stored points."""
    total = 0.0
    for a, b in itertools.pairwise(points):
        p1, p2 = math.radians(a.lat), math.radians(b.lat)
        dp, dl = p2 - p1, math.radians(b.lon - a.lon)
        h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        total += 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    return total


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _requests_line(activity: StoredActivity) -> str:
    if not activity.requests:
        return ""
    items = ", ".join(
        f"{escape(endpoint)} {escape(outcome)} ×{n}"
        for (endpoint, outcome), n in sorted(activity.requests.items())
    )
    return f"<p class='requests'>Requests: {items}</p>"


def _when(ts: int | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _activity_html(activity: StoredActivity) -> str:
    w, h = TRACK_BOX
    track = track_polyline(activity, w, h)
    first = activity.points[0].timestamp if activity.points else None
    last = activity.last_timestamp
    parts = [
        f"<section class='activity' id='activity-{activity.id}' data-state='{activity.state}'>",
        f"<h2>{escape(activity.title or '(untitled)')} <small>#{activity.id} · "
        f"<span class='state {activity.state}'>{activity.state}</span> · "
        f"{escape(activity.activity_type or 'no type')} · {escape(activity.status)}</small></h2>",
        f"<p>{_plural(len(activity.points), 'point')}, "
        f"{track_length_m(activity.points) / 1000:.2f} km, "
        f"{_plural(activity.duplicates, 'duplicate')}, "
        f"{_plural(len(activity.hr), 'heart-rate sample')} · "
        f"{_when(first)} → {_when(last)}</p>",
        _requests_line(activity),
        f"<svg class='track' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
        "xmlns='http://www.w3.org/2000/svg'>"
        f"<rect x='0' y='0' width='{w}' height='{h}' fill='#f4f4ee' stroke='#ccc'/>",
    ]
    if track:
        parts.append(
            f"<polyline points='{track}' fill='none' stroke='{TRACK_COLOUR}' stroke-width='4' "
            "stroke-linejoin='round' stroke-linecap='round'/>"
        )
        start = track.split(" ", 1)[0].split(",")
        end = track.rsplit(" ", 1)[-1].split(",")
        parts.append(f"<circle cx='{start[0]}' cy='{start[1]}' r='5' fill='{START_COLOUR}'/>")
        parts.append(f"<circle cx='{end[0]}' cy='{end[1]}' r='6' fill='{TRACK_COLOUR}'/>")
    parts.append("</svg>")
    if activity.hr:
        hw, hh = HR_BOX
        lo = min(s.hr for s in activity.hr)
        hi = max(s.hr for s in activity.hr)
        parts.append(
            f"<div class='hr'><p>Heart rate {lo}–{hi} bpm</p>"
            f"<svg class='hr' width='{hw}' height='{hh}' viewBox='0 0 {hw} {hh}' "
            "xmlns='http://www.w3.org/2000/svg'>"
            f"<rect x='0' y='0' width='{hw}' height='{hh}' fill='#f4f4ee' stroke='#ccc'/>"
            f"<polyline points='{hr_polyline(activity, hw, hh)}' fill='none' "
            f"stroke='{HR_COLOUR}' stroke-width='2'/></svg></div>"
        )
    parts.append("</section>")
    return "".join(parts)


def render_page(activities: Sequence[StoredActivity], faults: str = "") -> str:
    """The whole page; newest activity first. ``faults``: a one-line summary of active faults."""
    live = any(a.state == "live" for a in activities)
    refresh = f"<meta http-equiv='refresh' content='{REFRESH_S}'>" if live else ""
    body = "".join(_activity_html(a) for a in sorted(activities, key=lambda a: -a.id))
    if not activities:
        body = "<p>No activities yet. Start the tracker against this emulator.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"{refresh}<title>Map My Tracks emulator</title>"
        "<style>body{font-family:sans-serif;margin:1em 2em;background:#fff}"
        "h2 small{font-weight:normal;color:#555}.state.live{color:#080}"
        "section{margin-bottom:2em}</style></head><body>"
        "<h1>Map My Tracks emulator</h1>"
        f"<p class='faults'>Faults: {escape(faults or 'none')}</p>"
        f"{body}</body></html>"
    )
