"""Field extraction for the sentence types that carry a fix: RMC, GGA, GNS, GLL, GSA, VTG, ZDA.

Each parser takes the comma-split body of a checksummed sentence and returns one
:class:`Report` (the same shape for every type, so the epoch assembler has one merge rule), or
raises ``ValueError``/``IndexError`` for a sentence whose fields make no sense; the decoder
counts those as malformed. Parsing is strict on purpose: a position needs a well-formed
``ddmm.mmmm`` with a hemisphere letter, a time needs ``hhmmss[.ss]`` in range, so random bytes
that happen to carry a valid checksum never become a fix.

These are the fast path. :mod:`tracker.gps.nmea.reference` produces the same reports from pynmea2's
parsed objects; the tests hold the two to each other on every recording and on generated input.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

KNOTS_TO_MPS = 1852.0 / 3600.0
KMH_TO_MPS = 1.0 / 3.6

# ZDA carries a four-digit year; outside this range it is corrupt (and date arithmetic with
# week-rollover corrections must stay far from datetime's limits).
MIN_YEAR, MAX_YEAR = 1980, 2200

FIX_TYPES = frozenset({b"RMC", b"GGA", b"GNS", b"GLL", b"GSA", b"VTG", b"ZDA"})


class Report(NamedTuple):
    """What one sentence says about its epoch. None = the sentence does not say."""

    kind: str  # "RMC", "GGA", ...
    tod_ms: int | None  # UTC time of day in milliseconds
    valid: bool | None  # True: a position fix; False: explicitly no fix; None: no opinion
    lat: float | None = None
    lon: float | None = None
    alt_msl: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    sats: int | None = None
    hdop: float | None = None
    mode: int | None = None  # GSA's 1/2/3
    day: date | None = None


def time_of_day_ms(text: bytes) -> int:
    """``hhmmss`` or ``hhmmss.sss`` → milliseconds since midnight. ValueError if out of range."""
    if len(text) < 6 or not text[:6].isdigit() or (len(text) > 6 and text[6:7] != b"."):
        raise ValueError("bad time")
    hh = int(text[0:2])
    mm = int(text[2:4])
    ss = float(text[4:])  # float() takes ASCII bytes
    if hh > 23 or mm > 59 or not 0.0 <= ss < 61.0:
        raise ValueError("time out of range")
    return (hh * 3600 + mm * 60) * 1000 + round(ss * 1000)


def degrees(value: bytes, hemisphere: bytes, limit: int) -> float:
    """``dddmm.mmmm`` + ``N``/``S``/``E``/``W`` → signed degrees, computed as pynmea2 does."""
    dot = value.find(b".")
    if dot < 0:
        dot = len(value)
    if dot < 3 or not value[: dot - 2].isdigit():
        raise ValueError("bad position")
    minutes = float(value[dot - 2 :])
    whole = float(value[: dot - 2])
    if not 0.0 <= minutes < 60.0 or whole > limit:
        raise ValueError("position out of range")
    result = whole + minutes / 60
    if result > limit:
        raise ValueError("position out of range")
    if hemisphere == b"N" or hemisphere == b"E":
        return result
    if hemisphere == b"S" or hemisphere == b"W":
        return -result
    raise ValueError("bad hemisphere")


def _position(f: list[bytes], i: int) -> tuple[float, float] | tuple[None, None]:
    """Fields i..i+3 as (lat, lon); (None, None) when empty. 0,0 counts as empty (void fixes)."""
    if not f[i] or not f[i + 2]:
        return None, None
    lat = degrees(f[i], f[i + 1], 90)
    lon = degrees(f[i + 2], f[i + 3], 180)
    if lat == 0.0 and lon == 0.0:
        return None, None
    return lat, lon


def _float(text: bytes) -> float | None:
    if not text:
        return None
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _tod(text: bytes) -> int | None:
    return time_of_day_ms(text) if text else None


def two_digit_year(yy: int) -> int:
    """POSIX strptime's rule, as pynmea2 applies it: 69-99 → 1900s, 00-68 → 2000s."""
    return 1900 + yy if yy >= 69 else 2000 + yy


def rmc(f: list[bytes]) -> Report:
    # $--RMC,time,status,lat,N,lon,E,speed kn,course,ddmmyy,magvar,E,mode[,navstatus]
    status = f[2]
    # Mode indicator "N" (NMEA 2.3+) also means no fix, whatever the status says.
    valid = status == b"A" and not (len(f) > 12 and f[12][:1] == b"N")
    lat, lon = _position(f, 3) if valid else (None, None)
    if lat is None:
        valid = False
    day = None
    d = f[9]
    if d:
        if len(d) != 6 or not d.isdigit():
            raise ValueError("bad date")
        day = date(two_digit_year(int(d[4:6])), int(d[2:4]), int(d[0:2]))
    speed = _float(f[7])
    course = _float(f[8])
    return Report(
        "RMC", _tod(f[1]), valid, lat, lon, None,
        speed * KNOTS_TO_MPS if speed is not None and valid else None,
        course if valid else None, None, None, None, day,
    )  # fmt: skip


def gga(f: list[bytes]) -> Report:
    # $--GGA,time,lat,N,lon,E,quality,sats,hdop,alt,M,geoid,M,age,station
    quality = int(f[6]) if f[6] else 0
    sats = int(f[7]) if f[7] else None
    # A fix "from 0 satellites" is a receiver coasting on dead reckoning (gpsd rejects it too).
    valid = quality > 0 and sats != 0
    lat, lon = _position(f, 2) if valid else (None, None)
    if lat is None:
        valid = False
    return Report(
        "GGA", _tod(f[1]), valid, lat, lon, _float(f[9]) if valid else None,
        None, None, sats, _float(f[8]), None, None,
    )  # fmt: skip


def gns(f: list[bytes]) -> Report:
    # $--GNS,time,lat,N,lon,E,mode chars (one per constellation; N = none),sats,hdop,alt,...
    modes = f[6]
    valid = bool(modes) and modes.strip(b"N") != b""
    lat, lon = _position(f, 2) if valid else (None, None)
    if lat is None:
        valid = False
    sats = int(f[7]) if f[7] else None
    return Report(
        "GNS", _tod(f[1]), valid, lat, lon, _float(f[9]) if valid else None,
        None, None, sats, _float(f[8]), None, None,
    )  # fmt: skip


def gll(f: list[bytes]) -> Report:
    # $--GLL,lat,N,lon,E,time,status[,mode]
    valid = len(f) > 6 and f[6] == b"A" and not (len(f) > 7 and f[7][:1] == b"N")
    lat, lon = _position(f, 1) if valid else (None, None)
    if lat is None:
        valid = False
    return Report("GLL", _tod(f[5]) if len(f) > 5 else None, valid, lat, lon)


def gsa(f: list[bytes]) -> Report:
    # $--GSA,A/M,mode 1-3,12 x sat,PDOP,HDOP,VDOP[,system id]
    mode = int(f[2]) if f[2] else None
    if mode is not None and not 1 <= mode <= 3:
        raise ValueError("bad GSA mode")
    return Report("GSA", None, None, hdop=_float(f[16]), mode=mode)


def vtg(f: list[bytes]) -> Report:
    # $--VTG,course,T,course,M,speed,N,speed,K[,mode]; pre-2.0 receivers omit the unit letters.
    if len(f) > 9 and f[9][:1] == b"N":
        return Report("VTG", None, None)
    if f[2] == b"T":
        course, knots, kmh = _float(f[1]), _float(f[5]), _float(f[7])
    else:
        course, knots, kmh = _float(f[1]), _float(f[3]), _float(f[4])
    if knots is not None:
        speed: float | None = knots * KNOTS_TO_MPS
    else:
        speed = kmh * KMH_TO_MPS if kmh is not None else None
    return Report("VTG", None, None, speed_mps=speed, course_deg=course)


def zda(f: list[bytes]) -> Report:
    # $--ZDA,time,dd,mm,yyyy,zone h,zone m
    day = None
    if f[2] and f[3] and f[4]:
        year = int(f[4])
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise ValueError("year out of range")
        day = date(year, int(f[3]), int(f[2]))
    return Report("ZDA", _tod(f[1]), None, day=day)


PARSERS = {b"RMC": rmc, b"GGA": gga, b"GNS": gns, b"GLL": gll, b"GSA": gsa, b"VTG": vtg,
           b"ZDA": zda}  # fmt: skip
