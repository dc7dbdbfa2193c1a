"""The ride's GPX: positions as before, heart rate in Garmin's TrackPointExtension v1, read back
by gpxpy and by an independent reader (GPSBabel, Debian's package, when installed)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import gpxpy
import pytest

from tracker.mmt.gpx import HR_MATCH_S, TPX_NS, build_gpx, heart_rate_at
from tracker.model import HeartRateSample, Point

T0 = 1_760_000_000
POINTS = [Point(T0 + 10 * i, round(45.0 + i * 1e-3, 6), 7.0, 200.0 + i) for i in range(6)]
# One sample a second, but none around the fourth point (the strap dropped out for a while).
HR = [HeartRateSample(T0 + s, 100 + s) for s in range(51) if not 22 <= s <= 30]


def hr_of(trkpt: gpxpy.gpx.GPXTrackPoint) -> int | None:
    for ext in trkpt.extensions:
        if ext.tag == f"{{{TPX_NS}}}TrackPointExtension":
            (hr,) = [c for c in ext if c.tag == f"{{{TPX_NS}}}hr"]
            return int(hr.text or "0")
    return None


def test_each_point_takes_the_sample_of_its_second_or_a_recent_one() -> None:
    assert heart_rate_at(POINTS, HR) == [100, 110, 120, None, 140, 150]
    late = [HeartRateSample(T0 + 20 - HR_MATCH_S, 99)]
    assert heart_rate_at(POINTS[2:3], late) == [99]
    assert heart_rate_at(POINTS[2:3], [HeartRateSample(T0 + 19 - HR_MATCH_S, 99)]) == [None]
    assert heart_rate_at(POINTS[:1], [HeartRateSample(T0 + 1, 99)]) == [None]  # never ahead


def test_gpxpy_reads_positions_and_heart_rate_back() -> None:
    gpx = gpxpy.parse(build_gpx(POINTS, "Ride with a strap", HR))
    (track,) = gpx.tracks
    (segment,) = track.segments
    assert [(p.latitude, p.longitude, p.elevation) for p in segment.points] == [
        (p.lat, p.lon, p.ele) for p in POINTS
    ]
    assert [int(p.time.timestamp()) for p in segment.points] == [p.timestamp for p in POINTS]
    assert [hr_of(p) for p in segment.points] == [100, 110, 120, None, 140, 150]


def test_a_ride_without_a_strap_has_no_extension() -> None:
    xml = build_gpx(POINTS, "No strap")
    assert "gpxtpx" not in xml
    assert "TrackPointExtension" not in xml
    assert xml == build_gpx(POINTS, "No strap", [])


@pytest.mark.skipif(
    shutil.which("gpsbabel") is None,
    reason="GPSBabel is not installed (scripts/setup installs Debian's gpsbabel as root)",
)
def test_gpsbabel_reads_the_heart_rate_too(tmp_path: Path) -> None:
    path = tmp_path / "ride.gpx"
    path.write_text(build_gpx(POINTS, "Ride with a strap", HR), encoding="utf-8")
    out = subprocess.run(
        ["gpsbabel", "-t", "-i", "gpx", "-f", str(path), "-o", "unicsv,utc=0", "-F", "-"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["Latitude"]) for r in rows] == [p.lat for p in POINTS]
    assert [int(r["Heartrate"]) if r["Heartrate"] else None for r in rows] == [
        100, 110, 120, None, 140, 150,
    ]  # fmt: skip
