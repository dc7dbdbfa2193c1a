"""The GPX 1.1 file of a ride, for ``uploadActivity`` and `tracker export`, made with gpxpy.

Heart rate goes in Garmin's TrackPointExtension v1 (``gpxtpx:hr``), the extension every GPX
reader that knows heart rate reads (Strava, Garmin Connect, GPSBabel, gpxpy): each point carries
the sample of its own second, or the latest one within :data:`HR_MATCH_S` before it (a strap
drops a packet now and then). A ride without a strap gives the same file as before: no
extension, no extra namespace.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from tracker.model import HeartRateSample, Point

TPX_NS: Final = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
TPX_XSD: Final = "http://www.garmin.com/xmlschemas/TrackPointExtensionv1.xsd"
# A point takes the latest sample at most this many seconds older than itself.
HR_MATCH_S: Final = 5


def heart_rate_at(points: Sequence[Point], hr: Sequence[HeartRateSample]) -> list[int | None]:
    """For each point, the heart rate of its second or of the latest sample shortly before."""
    stamps = [s.timestamp for s in hr]
    out: list[int | None] = []
    for p in points:
        i = bisect.bisect_right(stamps, p.timestamp) - 1
        out.append(hr[i].hr if i >= 0 and p.timestamp - stamps[i] <= HR_MATCH_S else None)
    return out


def build_gpx(points: Sequence[Point], title: str, hr: Sequence[HeartRateSample] = ()) -> str:
    """A GPX 1.1 document (one track, one segment); ``hr`` sorted by time, as the outbox keeps
    it."""
    import xml.etree.ElementTree as ET

    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    gpx.creator = "tracker"
    gpx.name = title
    track = gpxpy.gpx.GPXTrack(name=title)
    segment = gpxpy.gpx.GPXTrackSegment()
    rates = heart_rate_at(points, hr) if hr else [None] * len(points)
    for p, rate in zip(points, rates, strict=True):
        point = gpxpy.gpx.GPXTrackPoint(
            latitude=round(p.lat, 6),
            longitude=round(p.lon, 6),
            elevation=None if p.ele is None else round(p.ele, 1),
            time=datetime.fromtimestamp(int(p.timestamp), tz=UTC),
        )
        if rate is not None:
            ext = ET.Element(f"{{{TPX_NS}}}TrackPointExtension")
            ET.SubElement(ext, f"{{{TPX_NS}}}hr").text = str(rate)
            point.extensions.append(ext)
        segment.points.append(point)
    track.segments.append(segment)
    gpx.tracks.append(track)
    if any(r is not None for r in rates):
        gpx.nsmap["gpxtpx"] = TPX_NS
        gpx.schema_locations = [
            "http://www.topografix.com/GPX/1/1",
            "http://www.topografix.com/GPX/1/1/gpx.xsd",
            TPX_NS,
            TPX_XSD,
        ]
    xml: str = gpx.to_xml(version="1.1")
    return xml
