"""Files for ``uploadActivity``: GPX and TCX parsed into points, FIT accepted as it is.

The format is recognised from the content, not from the file name: a GPX root element, a TCX
``TrainingCenterDatabase`` root, or the ``.FIT`` signature of a FIT header. Points are stamped to
the whole UTC second (the contract's unit); a second that occurs twice keeps its first point.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.emulator.store import RejectedError, StoredHeartRate, StoredPoint

_TCX_NS = "{http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2}"


@dataclass(frozen=True)
class ParsedFile:
    file_format: str  # gpx, tcx or fit
    points: tuple[StoredPoint, ...]
    hr: tuple[StoredHeartRate, ...] = ()


def parse_upload(content: bytes) -> ParsedFile:
    """Recognise and parse an uploaded activity file, or raise :class:`RejectedError`."""
    if not content:
        raise RejectedError("file is empty")
    if len(content) >= 12 and content[8:12] == b".FIT" and content[0] in (12, 14):
        return ParsedFile("fit", ())
    head = content[:2048].lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.startswith(b"<"):
        raise RejectedError("file is neither GPX, TCX nor FIT")
    try:
        root = ET.fromstring(content)  # noqa: S314
    except ET.ParseError as exc:
        raise RejectedError(f"file is not well-formed XML: {exc}") from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag == "gpx":
        return _parse_gpx(content)
    if tag == "TrainingCenterDatabase":
        return _parse_tcx(root)
    raise RejectedError(f"file is XML but neither GPX nor TCX (root element {tag!r})")


def _second(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _dedupe(points: list[StoredPoint]) -> tuple[StoredPoint, ...]:
    for point in points:
        if not (-90.0 <= point.lat <= 90.0 and -180.0 <= point.lon <= 180.0):
            raise RejectedError(
                f"track point {point.lat}, {point.lon} is out of range (±90, ±180)"
            )
    points.sort(key=lambda p: p.timestamp)
    kept: list[StoredPoint] = []
    for point in points:
        if not kept or point.timestamp > kept[-1].timestamp:
            kept.append(point)
    if not kept:
        raise RejectedError("file holds no timed track points")
    return tuple(kept)


def _parse_gpx(content: bytes) -> ParsedFile:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(content.decode("utf-8", errors="replace"))
    except gpxpy.gpx.GPXException as exc:
        raise RejectedError(f"GPX file cannot be read: {exc}") from None
    points: list[StoredPoint] = []
    hr: dict[int, StoredHeartRate] = {}
    for track in gpx.tracks:
        for segment in track.segments:
            for p in segment.points:
                if p.time is None:
                    raise RejectedError("GPX track point without <time>")
                ts = _second(p.time)
                points.append(StoredPoint(ts, p.latitude, p.longitude, p.elevation))
                bpm = _gpxtpx_hr(p.extensions)
                if bpm is not None:
                    hr.setdefault(ts, StoredHeartRate(ts, bpm))
    return ParsedFile("gpx", _dedupe(points), tuple(hr[k] for k in sorted(hr)))


_TPX_NAMESPACES = (  # Garmin's TrackPointExtension, v1 and v2: what GPX writers use for heart rate
    "http://www.garmin.com/xmlschemas/TrackPointExtension/v1",
    "http://www.garmin.com/xmlschemas/TrackPointExtension/v2",
)


def _gpxtpx_hr(extensions: list[ET.Element]) -> int | None:
    for ext in extensions:
        for ns in _TPX_NAMESPACES:
            found = ext.find(f"{{{ns}}}hr") if ext.tag.startswith(f"{{{ns}}}") else None
            if found is not None and (found.text or "").strip().isdigit():
                return int((found.text or "").strip())
    return None


def _parse_tcx(root: ET.Element) -> ParsedFile:
    points: list[StoredPoint] = []
    hr: dict[int, StoredHeartRate] = {}
    for tp in root.iter(f"{_TCX_NS}Trackpoint"):
        time_text = tp.findtext(f"{_TCX_NS}Time")
        if not time_text:
            raise RejectedError("TCX Trackpoint without <Time>")
        try:
            ts = _second(datetime.fromisoformat(time_text.strip().replace("Z", "+00:00")))
        except ValueError:
            raise RejectedError(f"TCX time {time_text!r} is not ISO 8601") from None
        bpm = tp.findtext(f"{_TCX_NS}HeartRateBpm/{_TCX_NS}Value")
        if bpm and bpm.strip().isdigit():
            hr.setdefault(ts, StoredHeartRate(ts, int(bpm)))
        lat = tp.findtext(f"{_TCX_NS}Position/{_TCX_NS}LatitudeDegrees")
        lon = tp.findtext(f"{_TCX_NS}Position/{_TCX_NS}LongitudeDegrees")
        if lat is None or lon is None:
            continue  # a Trackpoint may carry only heart rate or distance
        ele = tp.findtext(f"{_TCX_NS}AltitudeMeters")
        try:
            points.append(StoredPoint(ts, float(lat), float(lon),
                                      None if ele is None else float(ele)))
        except ValueError:
            raise RejectedError("TCX position is not a number") from None
    return ParsedFile("tcx", _dedupe(points), tuple(hr[k] for k in sorted(hr)))
