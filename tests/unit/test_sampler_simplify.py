"""`tracker simplify`: GPX and NMEA in, kept points out, the summary on stderr."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gpxpy.gpx
import pytest

from tests.conftest import shared_file
from tests.property.test_sampler_properties import check, run
from tracker.cli import main
from tracker.commands.simplify import read_fixes


def write_gpx(path: Path, n: int = 300) -> None:
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    seg = gpxpy.gpx.GPXTrackSegment()
    start = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
    for k in range(n):
        seg.points.append(
            gpxpy.gpx.GPXTrackPoint(
                46.0 + 6 * k / 111_195 * math.cos(k / 40),
                7.0 + 6 * k / 77_000,
                elevation=400 + k / 10,
                time=start + timedelta(seconds=k),
            )
        )
    track.segments.append(seg)
    gpx.tracks.append(track)
    path.write_text(gpx.to_xml())


def test_gpx_in_json_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ride = tmp_path / "ride.gpx"
    write_gpx(ride)
    assert main(["simplify", str(ride), "--max-error", "5", "--max-delay", "30", "--json"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert 2 <= len(rows) < 300
    assert set(rows[0]) == {"timestamp", "lat", "lon", "ele", "emitted_at"}
    ts = [r["timestamp"] for r in rows]
    assert ts == sorted(set(ts))
    assert all(r["emitted_at"] >= r["timestamp"] for r in rows)
    assert all(r["emitted_at"] - r["timestamp"] <= 31 for r in rows)
    assert "300 fixes read" in captured.err
    assert "max SED" in captured.err
    fixes = list(read_fixes(str(ride)))
    check(fixes, run(fixes, 5.0, 30), 5.0, 30)


def test_nmea_log_text_out(capsys: pytest.CaptureFixture[str]) -> None:
    log = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    assert main(["simplify", str(log), "--max-error", "10"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert 10 < len(lines) < 400
    assert lines[0].startswith("2024-09-23T14:")
    sed = float(captured.err.split("max SED ")[1].split(" m")[0])
    assert sed <= 10.0


def test_missing_file_is_a_runtime_error(tmp_path: Path) -> None:
    assert main(["simplify", str(tmp_path / "nope.gpx")]) == 1


def test_gpx_without_times_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gpx"
    bad.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>'
        '<trkpt lat="1" lon="2"></trkpt></trkseg></trk></gpx>'
    )
    assert main(["simplify", str(bad)]) == 1


def test_a_bad_bound_is_a_usage_error(tmp_path: Path) -> None:
    ride = tmp_path / "ride.gpx"
    write_gpx(ride, 5)
    assert main(["simplify", str(ride), "--max-error", "0"]) == 2


def test_runs_as_a_real_process(tmp_path: Path) -> None:
    ride = tmp_path / "ride.gpx"
    write_gpx(ride, 120)
    proc = subprocess.run(
        [sys.executable, "-m", "tracker", "simplify", str(ride), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["timestamp"] == int(
        datetime(2025, 6, 1, 8, 1, 59, tzinfo=UTC).timestamp()
    )
