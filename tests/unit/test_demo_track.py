"""The demo runs anywhere: without ../shared beside the checkout it rides the bundled excerpt."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker import demo
from tracker.gps.replay import read_fixes


def test_falls_back_to_the_bundled_track(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRACKER_SHARED_DATA", str(tmp_path / "absent"))
    monkeypatch.setattr(demo, "__file__", str(tmp_path / "pkg" / "tracker" / "demo.py"))
    monkeypatch.chdir(tmp_path)
    assert demo.find_track(None) == demo.BUNDLED_TRACK


def test_bundled_track_is_a_real_ride_with_its_attribution() -> None:
    fixes, stats = read_fixes(demo.BUNDLED_TRACK)
    moving = [f for f in fixes if f.mode >= 2]
    assert len(moving) >= 450  # about 17 minutes at one fix every 2 s
    assert stats.bad_checksum == 0
    assert moving[0].time.date().isoformat() == "2005-09-25"
    assert moving[-1].time.date().isoformat() == "2005-09-26"  # across UTC midnight
    notice = (demo.BUNDLED_TRACK.parent / "NOTICE.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in notice
    assert (demo.BUNDLED_TRACK.parent / "LICENSE-Apache-2.0").is_file()
