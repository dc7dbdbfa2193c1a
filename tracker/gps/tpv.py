"""Fixes as gpsd TPV reports, and gpsd TPV reports as fixes.

gpsd's JSON is the lingua franca of GPS tools, so ``tracker fixes --json`` prints the same field
names and units (``time`` ISO 8601 UTC, ``mode``, ``lat``/``lon`` degrees, ``altMSL`` metres,
``speed`` m/s, ``track`` degrees true) plus ``sats`` and ``hdop``; and the gpsd source reads
gpsd's own TPV back into a :class:`~tracker.model.Fix`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tracker.model import Fix, FixMode


def fix_to_tpv(fix: Fix) -> dict[str, Any]:
    """A gpsd-style TPV object (fields that are unknown are left out, as gpsd does)."""
    millis = round(fix.unix * 1000)
    stamp = datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    tpv: dict[str, Any] = {
        "class": "TPV",
        "time": f"{stamp}.{millis % 1000:03d}Z",
        "mode": int(fix.mode),
    }
    if fix.mode >= FixMode.FIX_2D:
        tpv["lat"] = round(fix.lat, 9)
        tpv["lon"] = round(fix.lon, 9)
    optional = (
        ("altMSL", fix.alt_msl, 3),
        ("speed", fix.speed_mps, 3),
        ("track", fix.course_deg, 4),
        ("hdop", fix.hdop, 2),
    )
    for key, value, digits in optional:
        if value is not None:
            tpv[key] = round(value, digits)
    if fix.sats is not None:
        tpv["sats"] = fix.sats
    return tpv


def tpv_to_fix(tpv: dict[str, Any]) -> Fix | None:
    """gpsd's TPV → Fix; None when it has no time (gpsd without a date never guesses either).

    Raises ValueError for a TPV whose fields have the wrong types.
    """
    if tpv.get("class") != "TPV" or not isinstance(tpv.get("time"), str):
        return None
    when = datetime.fromisoformat(tpv["time"].replace("Z", "+00:00")).astimezone(UTC)
    mode = FixMode(int(tpv.get("mode", 0)))
    lat, lon = tpv.get("lat"), tpv.get("lon")
    if (
        mode < FixMode.FIX_2D
        or not isinstance(lat, int | float)
        or not isinstance(lon, int | float)
    ):
        mode, lat, lon = min(mode, FixMode.NO_FIX), math.nan, math.nan
    alt = tpv.get("altMSL", tpv.get("alt"))

    def num(key: str) -> float | None:
        value = tpv.get(key)
        return float(value) if isinstance(value, int | float) else None

    sats = tpv.get("uSat", tpv.get("sats"))
    return Fix(
        time=when,
        unix=when.timestamp(),
        lat=float(lat),
        lon=float(lon),
        mode=mode,
        alt_msl=float(alt) if isinstance(alt, int | float) else None,
        speed_mps=num("speed"),
        course_deg=num("track"),
        sats=int(sats) if isinstance(sats, int) else None,
        hdop=num("hdop"),
    )
