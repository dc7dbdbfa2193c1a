"""Upload files: format by content, whole-second points, clear refusals."""

from __future__ import annotations

import gpxpy
import gpxpy.gpx
import pytest

from tracker.emulator.store import RejectedError
from tracker.emulator.uploads import parse_upload


def make_gpx(n: int, *, with_time: bool = True) -> bytes:
    from datetime import UTC, datetime, timedelta

    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(track)
    track.segments.append(segment)
    t0 = datetime(2025, 11, 22, 10, 0, tzinfo=UTC)
    for i in range(n):
        segment.points.append(gpxpy.gpx.GPXTrackPoint(
            51.0 + i * 1e-4, 1.0, elevation=float(i),
            time=t0 + timedelta(seconds=2 * i) if with_time else None))
    return gpx.to_xml().encode()


def test_gpx_made_by_gpxpy_round_trips():
    parsed = parse_upload(make_gpx(50))
    assert parsed.file_format == "gpx"
    assert len(parsed.points) == 50
    assert parsed.points[1].timestamp - parsed.points[0].timestamp == 2
    assert parsed.points[3].ele == 3.0


def test_gpx_without_times_is_refused():
    with pytest.raises(RejectedError, match="time"):
        parse_upload(make_gpx(3, with_time=False))


def test_empty_gpx_is_refused():
    with pytest.raises(RejectedError, match="no timed track points"):
        parse_upload(make_gpx(0))


def test_gpx_with_out_of_range_coordinates_is_refused():
    blob = make_gpx(2).replace(b'lat="51.0"', b'lat="95.0"')
    with pytest.raises(RejectedError, match="range"):
        parse_upload(blob)


@pytest.mark.parametrize(("blob", "why"), [
    (b"", "empty"),
    (b"PK\x03\x04zipfile", "neither"),
    (b"<html><body/></html>", "neither GPX nor TCX"),
    (b"<gpx><unclosed>", "XML"),
])
def test_unknown_content_is_refused(blob, why):
    with pytest.raises(RejectedError, match=why):
        parse_upload(blob)


def test_fit_header_is_recognised():
    header = bytes([14, 0x10, 0x52, 0x08, 1, 0, 0, 0]) + b".FIT" + b"\x00\x00"
    assert parse_upload(header + b"\x00" * 8).file_format == "fit"
