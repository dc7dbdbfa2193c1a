"""gpsd TPV in and out; GPS-time pacing of recorded logs."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tracker.gps.nmea.pacing import epochs, line_time_ms
from tracker.gps.tpv import fix_to_tpv, tpv_to_fix
from tracker.model import Fix, FixMode


def test_tpv_round_trip() -> None:
    when = datetime(2024, 9, 23, 14, 26, 1, 500000, tzinfo=UTC)
    fix = Fix(when, when.timestamp(), 47.123456789, -3.5, FixMode.FIX_3D, 12.5, 4.2, 181.0, 9, 0.8)
    tpv = fix_to_tpv(fix)
    assert tpv == {"class": "TPV", "time": "2024-09-23T14:26:01.500Z", "mode": 3,
                   "lat": 47.123456789, "lon": -3.5, "altMSL": 12.5, "speed": 4.2,
                   "track": 181.0, "hdop": 0.8, "sats": 9}  # fmt: skip
    assert tpv_to_fix(tpv) == fix


def test_tpv_without_fix_or_time() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    no_fix = Fix(when, when.timestamp(), math.nan, math.nan, FixMode.NO_FIX)
    assert "lat" not in fix_to_tpv(no_fix)
    back = tpv_to_fix({"class": "TPV", "mode": 1, "time": "2024-01-01T00:00:00.000Z"})
    assert back is not None
    assert back.mode is FixMode.NO_FIX
    assert tpv_to_fix({"class": "TPV", "mode": 3, "lat": 1.0, "lon": 2.0}) is None  # no time
    assert tpv_to_fix({"class": "SKY"}) is None
    with pytest.raises(ValueError, match="Invalid isoformat"):
        tpv_to_fix({"class": "TPV", "mode": 3, "time": "yesterday"})


def test_line_time() -> None:
    assert line_time_ms(b"$GPRMC,123519.50,A,4807.038,N,...*00") == 45_319_500
    assert line_time_ms(b"$GPGLL,4916.45,N,12311.12,W,225444,A*1D") == 82_484_000
    assert line_time_ms(b"$GPGSV,3,1,11*00") is None
    assert line_time_ms(b"garbage") is None
    assert line_time_ms(b"$GPRMC,,V,*00") is None


def test_epochs_and_gaps() -> None:
    lines = [
        b"$GPTXT,hello*00\n",
        b"$GPRMC,235959,A*00\n", b"$GPGSV,1*00\n",
        b"$GPRMC,000001,A*00\n",
        b"$GPRMC,000000,A*00\n",  # backwards: gap 0, not negative
    ]  # fmt: skip
    bursts = list(epochs(lines))
    assert [len(b.lines) for b in bursts] == [3, 1, 1]
    assert [b.gap_s for b in bursts] == [0.0, 2.0, 0.0]  # across midnight: 2 s
    assert all(b.timed for b in bursts)
    assert next(iter(epochs([b"$GPGSV,1*00\n"]))).timed is False
