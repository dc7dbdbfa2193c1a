"""The page's geometry and the redirect rule, without a server."""

from __future__ import annotations

import pytest

from tracker.emulator.oauth import is_loopback_redirect
from tracker.emulator.page import hr_polyline, render_page, track_length_m, track_polyline
from tracker.emulator.store import StoredActivity, StoredHeartRate, StoredPoint

T0 = 1_763_809_643


def activity(points: list[tuple[float, float]], hr: list[int] | None = None) -> StoredActivity:
    return StoredActivity(
        id=7, title="t", activity_type="cycling", status="public",
        points=[StoredPoint(T0 + i, lat, lon) for i, (lat, lon) in enumerate(points)],
        hr=[StoredHeartRate(T0 + i, v) for i, v in enumerate(hr or [])],
    )


def coords(polyline: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.split()]  # type: ignore[misc]


def test_track_fits_the_box_and_keeps_its_shape():
    # 0.01° north and 0.01°/cos(60°) = 0.02° east at 60°N: a square on the ground.
    a = activity([(60.0, 10.0), (60.01, 10.0), (60.01, 10.02), (60.0, 10.02)])
    xy = coords(track_polyline(a, 640, 400, pad=10))
    assert all(10 - 1e-6 <= x <= 630 + 1e-6 and 10 - 1e-6 <= y <= 390 + 1e-6 for x, y in xy)
    width = max(x for x, _ in xy) - min(x for x, _ in xy)
    height = max(y for _, y in xy) - min(y for _, y in xy)
    assert width == pytest.approx(height, rel=1e-3)
    assert xy[1][1] < xy[0][1]  # north is up
    assert xy[2][0] > xy[1][0]  # east is right


def test_single_point_and_empty_tracks_do_not_break():
    assert len(coords(track_polyline(activity([(1.0, 1.0)]), 100, 100))) == 1
    assert track_polyline(activity([]), 100, 100) == ""
    assert "No activities yet" in render_page([])


def test_heart_rate_line_goes_up_with_the_rate():
    xy = coords(hr_polyline(activity([], hr=[100, 150, 120]), 300, 100, pad=0))
    assert xy[0] == (0.0, 100.0)
    assert xy[1] == (150.0, 0.0)
    assert xy[2][0] == 300.0


def test_length_of_a_degree_of_latitude():
    assert track_length_m([StoredPoint(T0, 0, 0), StoredPoint(T0 + 1, 1, 0)]) == \
        pytest.approx(111_195, rel=1e-3)


@pytest.mark.parametrize(("uri", "ok"), [
    ("http://127.0.0.1:8765/callback", True),
    ("http://localhost:1/", True),
    ("http://127.0.0.1/", True),
    ("https://127.0.0.1:8765/cb", False),
    ("http://127.0.0.1.evil.example/cb", False),
    ("http://127.0.0.1@evil.example/cb", False),
    ("http://evil.example/?x=http://127.0.0.1", False),
    ("http://127.0.0.1:99999/cb", False),
    ("javascript:alert(1)", False),
])
def test_loopback_redirects(uri, ok):
    assert is_loopback_redirect(uri) is ok
