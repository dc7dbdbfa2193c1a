"""`tracker simplify FILE --max-error M [--max-delay S] [--json]`: thin a recorded ride.

FILE is an NMEA log or a GPX track (told apart by content). The fixes go through the same
filters as in `tracker run`, then through the sampler (tracker.ride.sampler), exactly as the live
engine would feed them. Without ``--json`` one line per kept point (time, lat, lon, ele); with it
one JSON object per line: ``timestamp`` (int, Unix seconds), ``lat``, ``lon``, ``ele`` and
``emitted_at`` (int: the GPS time of the fix whose arrival committed the point; the last fix's
for the points the end of the ride commits). The summary goes to stderr: fixes in, points out,
ratio, and the largest SED of any accepted fix against the kept points (measured here again,
independently of the sampler's own arithmetic).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tracker.config import Settings
from tracker.errors import ConfigError, GpsInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tracker.model import Fix, Point
    from tracker.ride.sampler import Sampler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="NMEA log or GPX file")
    parser.add_argument(
        "--max-error",
        type=float,
        metavar="M",
        help="SED bound in metres (default: [sampler] max_error_m)",
    )
    parser.add_argument(
        "--max-delay",
        type=int,
        metavar="S",
        help="delay bound in seconds of GPS time (default: [sampler] max_delay_s)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per kept point")


def main(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from tracker.gps.filters import FixFilter
    from tracker.ride.sampler import Sampler

    max_error = settings.sampler.max_error_m if args.max_error is None else args.max_error
    max_delay = settings.sampler.max_delay_s if args.max_delay is None else args.max_delay
    if not 0.5 <= max_error <= 1000.0:
        raise ConfigError("--max-error must be between 0.5 and 1000 m")
    if not 1 <= max_delay <= 3600:
        raise ConfigError("--max-delay must be between 1 and 3600 s")
    fix_filter = FixFilter(settings.filters.max_hdop, settings.filters.max_speed_mps)
    sampler = Sampler(max_error, max_delay)
    accepted: list[Fix] = []
    kept: list[tuple[Point, int]] = []
    n_read = 0
    for fix in read_fixes(args.file):
        n_read += 1
        if fix_filter.accept(fix) is not None:
            continue
        before = sampler.fixes_accepted
        got = sampler.feed(fix)
        if sampler.fixes_accepted > before:
            accepted.append(fix)
        kept.extend((p, int(fix.unix // 1)) for p in got)
    last = int(accepted[-1].unix // 1) if accepted else 0
    kept.extend((p, last) for p in sampler.flush())
    out = sys.stdout
    try:
        for point, emitted_at in kept:
            if args.json:
                obj = {
                    "timestamp": point.timestamp,
                    "lat": point.lat,
                    "lon": point.lon,
                    "ele": point.ele,
                    "emitted_at": emitted_at,
                }
                out.write(json.dumps(obj, separators=(",", ":")) + "\n")
            else:
                out.write(_text(point) + "\n")
        out.flush()
    except BrokenPipeError:  # `tracker simplify ride.gpx | head`
        sys.stderr.close()
        return 0
    worst = max_sed([p for p, _ in kept], accepted)
    n_in = len(accepted)
    ratio = len(kept) / n_in if n_in else 0.0
    print(
        f"{args.file}: {n_read} fixes read, {n_in} into the sampler "
        f"({_drops(fix_filter, sampler)}), {len(kept)} points out, ratio {ratio:.4f}, "
        f"max SED {worst:.2f} m (bound {max_error:g} m, delay {max_delay} s)",
        file=sys.stderr,
    )
    return 0


def read_fixes(path: str) -> Iterator[Fix]:
    """Every fix of an NMEA log or a GPX file, in file order."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512).lstrip()
    except IsADirectoryError:
        raise GpsInputError(f"{path}: is a directory, not a ride file") from None
    except OSError as exc:
        raise GpsInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"<?xml") or head.startswith(b"<gpx"):
        return iter(_gpx_fixes(path))
    return _nmea_fixes(path)


def _nmea_fixes(path: str) -> Iterator[Fix]:
    from tracker.gps.replay import iter_fixes

    return iter_fixes(path)


def _gpx_fixes(path: str) -> list[Fix]:
    from datetime import UTC

    import gpxpy
    import gpxpy.gpx

    from tracker.model import Fix, FixMode

    try:
        with open(path, encoding="utf-8") as handle:
            gpx = gpxpy.parse(handle)
    except (OSError, UnicodeDecodeError, gpxpy.gpx.GPXException) as exc:
        raise GpsInputError(f"{path}: not a readable GPX file: {exc}") from None
    fixes = []
    for track in gpx.tracks:
        for segment in track.segments:
            for p in segment.points:
                if p.time is None:
                    raise GpsInputError(
                        f"{path}: a track point at {p.latitude}, {p.longitude} has no time "
                        "(the sampler needs times)"
                    )
                when = p.time if p.time.tzinfo else p.time.replace(tzinfo=UTC)
                fixes.append(
                    Fix(
                        time=when.astimezone(UTC),
                        unix=when.timestamp(),
                        lat=p.latitude,
                        lon=p.longitude,
                        mode=FixMode.FIX_3D if p.elevation is not None else FixMode.FIX_2D,
                        alt_msl=p.elevation,
                        hdop=p.horizontal_dilution,
                    )
                )
    return fixes


def max_sed(points: list[Point], fixes: list[Fix]) -> float:
    """Largest distance from a fix to the kept polyline interpolated at the fix's time."""
    import bisect

    from tracker.geo import haversine_m

    if not points:
        return 0.0
    ts = [p.timestamp for p in points]
    worst = 0.0
    for f in fixes:
        j = bisect.bisect_left(ts, f.unix)
        if j < len(ts) and ts[j] == f.unix:
            lat, lon = points[j].lat, points[j].lon
        elif 0 < j < len(ts):
            a, b = points[j - 1], points[j]
            s = (f.unix - a.timestamp) / (b.timestamp - a.timestamp)
            lat = a.lat + (b.lat - a.lat) * s
            lon = a.lon + (b.lon - a.lon) * s
        else:
            return float("inf")  # a fix outside the kept span: the bound is broken
        worst = max(worst, haversine_m(f.lat, f.lon, lat, lon))
    return worst


def _drops(fix_filter: object, sampler: Sampler) -> str:
    drops = {k: v for k, v in getattr(fix_filter, "drops", {}).items() if v}
    skipped = {
        "out of order": sampler.skipped_out_of_order,
        "invalid": sampler.skipped_invalid,
        "unreachable": sampler.skipped_unreachable,
        "jump": sampler.skipped_jump,
    }
    parts = [f"filtered {k} {v}" for k, v in drops.items()]
    parts += [f"sampler skipped {k} {v}" for k, v in skipped.items() if v]
    return ", ".join(parts) or "none dropped"


def _text(p: Point) -> str:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(p.timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ele = "" if p.ele is None else f" {p.ele:.1f}"
    return f"{when} {p.lat:.6f} {p.lon:.6f}{ele}"
