"""`tracker demo` end to end, shortened: the same code path as ./scripts/demo with a shorter
ride and outage, so it fits the test budget. Everything in it is real (emulator, pty receiver,
MockFactory button, SQLite outbox, byte-counting proxy)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.config import Settings
from tracker.demo import find_track, run_demo
from tracker.engine.service import Service

from ..conftest import shared_file


@pytest.mark.slow
async def test_demo_ride_start_outage_lost_reply_stop_and_summary(tmp_path: Path) -> None:
    track = shared_file("tracks", "NmeaParser__NmeaSampleData.txt")
    out = io.StringIO()
    summary = await run_demo(
        Settings(),
        Service,
        track=track,
        speed=30.0,
        ride_s=12.0,
        outage_at_s=2.0,
        outage_s=4.0,
        lost_reply_at_s=8.0,
        out=out,
    )
    text = out.getvalue()
    assert "button pressed: activity started" in text
    assert "-- outage: the emulator is down" in text
    assert "one reply lost" in text
    assert summary.activities == 1
    assert summary.state == "stopped"
    assert summary.fixes > 100
    assert summary.points_on_server == summary.points_kept  # nothing lost, nothing doubled
    assert summary.hr_on_server > 0  # the replayed strap's samples went up with the ride
    assert summary.duplicates <= 500  # one batch at most (max_batch_points)
    counts = summary.requests
    assert counts["startActivity"]["ok"] == 1
    assert counts["stopActivity"]["ok"] == 1
    assert sum(c.get("down", 0) for c in counts.values()) >= 1
    assert sum(c.get("lost_reply", 0) for c in counts.values()) == 1
    assert summary.bytes_sent > 1000
    assert summary.page_url.startswith("http://127.0.0.1:")
    for line in summary.lines():
        assert line in text
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "export", "--data-dir", summary.data_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.count("<trkpt") == summary.points_kept


def test_demo_names_a_missing_track_clearly(tmp_path: Path) -> None:
    from tracker.errors import TrackerError

    with pytest.raises(TrackerError, match="no such track file"):
        find_track(str(tmp_path / "nope.nmea"))


def test_demo_help_runs_without_arguments_needed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--track" in done.stdout
