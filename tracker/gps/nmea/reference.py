"""The same :class:`~tracker.gps.nmea.sentences.Report` as the fast path, produced by pynmea2.

pynmea2 is the well-known, well-tested NMEA library; it is ~5x too slow to parse every line on a
Pi Zero, so the decoder uses it as the reference: ``FixDecoder(engine="pynmea2")`` runs the whole
decoder on it, and the tests require both engines to agree sentence by sentence and fix by fix
on every recording. Only the sentence text handling differs; the rules that pynmea2 does not
have (void fixes, 0,0 positions, mode indicators) are applied the same way to both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pynmea2

from tracker.gps.nmea.sentences import KMH_TO_MPS, KNOTS_TO_MPS, MAX_YEAR, MIN_YEAR, Report


def _tod(t: dt.time | None) -> int | None:
    if t is None:
        return None
    return (t.hour * 3600 + t.minute * 60 + t.second) * 1000 + round(t.microsecond / 1000)


def _num(text: str | None) -> float | None:
    if not text:
        return None
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _latlon(msg: Any) -> tuple[float, float] | tuple[None, None]:
    if not msg.lat or not msg.lon:
        return None, None
    if msg.lat_dir not in ("N", "S") or msg.lon_dir not in ("E", "W"):
        raise ValueError("bad hemisphere")
    lat, lon = float(msg.latitude), float(msg.longitude)
    if abs(lat) > 90 or abs(lon) > 180:
        raise ValueError("position out of range")
    if lat == 0.0 and lon == 0.0:
        return None, None
    return lat, lon


def _check_latlon_text(msg: Any) -> None:
    # pynmea2's dm_to_sd accepts what its regex accepts; mirror the fast path's range checks.
    for text, limit in ((msg.lat, 90), (msg.lon, 180)):
        if text:
            dot = text.find(".")
            dot = len(text) if dot < 0 else dot
            if dot < 3 or not text[: dot - 2].isdigit():
                raise ValueError("bad position")
            if not 0.0 <= float(text[dot - 2 :]) < 60.0 or float(text[: dot - 2]) > limit:
                raise ValueError("position out of range")


def _time_text(text: str) -> int | None:
    # pynmea2's timestamp() accepts a few forms the fast path rejects; apply the same check.
    from tracker.gps.nmea.sentences import time_of_day_ms

    return time_of_day_ms(text.encode("ascii")) if text else None


def parse_with_pynmea2(fields: list[bytes]) -> Report | None:
    """Parse one comma-split sentence body with pynmea2 → Report (None: a type we do not use)."""
    line = b",".join(fields).decode("ascii")
    msg: Any = pynmea2.parse("$" + line)
    kind = msg.sentence_type
    if kind == "RMC":
        tod = _time_text(msg.data[0])
        valid = msg.status == "A" and not (msg.mode_indicator or "").startswith("N")
        _check_latlon_text(msg) if valid else None
        lat, lon = _latlon(msg) if valid else (None, None)
        valid = valid and lat is not None
        datestamp = msg.data[8]
        day = None
        if datestamp:
            if len(datestamp) != 6 or not datestamp.isdigit():
                raise ValueError("bad date")
            day = msg.datestamp
        speed = _num(msg.data[6])
        course = _num(msg.data[7])
        return Report(
            "RMC", tod, valid, lat, lon, None,
            speed * KNOTS_TO_MPS if speed is not None and valid else None,
            course if valid else None, None, None, None, day,
        )  # fmt: skip
    if kind in ("GGA", "GNS"):
        tod = _time_text(msg.data[0])
        sats = int(msg.num_sats) if msg.num_sats else None
        if kind == "GGA":
            valid = (int(msg.gps_qual) if msg.data[5] else 0) > 0 and sats != 0
        else:
            modes = msg.mode_indicator or ""
            valid = bool(modes) and modes.strip("N") != ""
        if valid:
            _check_latlon_text(msg)
        lat, lon = _latlon(msg) if valid else (None, None)
        valid = valid and lat is not None
        hdop = _num(msg.horizontal_dil if kind == "GGA" else msg.hdop)
        alt = _num(msg.data[8]) if valid else None
        return Report(kind, tod, valid, lat, lon, alt, None, None, sats, hdop, None, None)
    if kind == "GLL":
        status = msg.status if len(msg.data) > 5 else ""
        faa = msg.faa_mode if len(msg.data) > 6 else ""
        valid = status == "A" and not (faa or "").startswith("N")
        if valid:
            _check_latlon_text(msg)
        lat, lon = _latlon(msg) if valid else (None, None)
        valid = valid and lat is not None
        tod = _time_text(msg.data[4]) if len(msg.data) > 4 else None
        return Report("GLL", tod, valid, lat, lon)
    if kind == "GSA":
        mode = int(msg.mode_fix_type) if msg.mode_fix_type else None
        if mode is not None and not 1 <= mode <= 3:
            raise ValueError("bad GSA mode")
        return Report("GSA", None, None, hdop=_num(msg.data[15]), mode=mode)
    if kind == "VTG":
        data = msg.data
        if len(data) > 8 and data[8][:1] == "N":
            return Report("VTG", None, None)
        if data[1] == "T":
            course, knots, kmh = _num(data[0]), _num(data[4]), _num(data[6])
        else:
            course, knots, kmh = _num(data[0]), _num(data[2]), _num(data[3])
        if knots is not None:
            vtg_speed: float | None = knots * KNOTS_TO_MPS
        else:
            vtg_speed = kmh * KMH_TO_MPS if kmh is not None else None
        return Report("VTG", None, None, speed_mps=vtg_speed, course_deg=course)
    if kind == "ZDA":
        tod = _time_text(msg.data[0])
        day = None
        if msg.data[1] and msg.data[2] and msg.data[3]:
            if not MIN_YEAR <= int(msg.year) <= MAX_YEAR:
                raise ValueError("year out of range")
            day = dt.date(int(msg.year), int(msg.month), int(msg.day))
        return Report("ZDA", tod, None, day=day)
    return None
