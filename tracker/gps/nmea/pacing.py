"""The receiver's own clock in a recorded log, so a replay can keep (a multiple of) its pace.

A log has no wall-clock stamps; its NMEA times are the only clock there is. :func:`epochs`
groups recorded lines into receiver bursts (a burst ends where the time of day changes) and says
how many GPS seconds passed since the previous burst, so a replayer sleeps ``gap / speed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tracker.gps.nmea.sentences import time_of_day_ms

# Sentence types whose first timed field position we know: (field index of the time).
_TIME_FIELD = {b"RMC": 1, b"GGA": 1, b"GNS": 1, b"ZDA": 1, b"GLL": 5, b"GST": 1, b"GBS": 1}
_DAY_MS = 86_400_000


def line_time_ms(line: bytes) -> int | None:
    """UTC time of day (ms) a recorded line carries, or None (untimed type, or unreadable)."""
    start = line.rfind(b"$")  # the last one: binary noise may precede a sentence on its line
    if start < 0 or len(line) < start + 7:
        return None
    index = _TIME_FIELD.get(line[start + 3 : start + 6])
    if index is None:
        return None
    fields = line[start:].split(b"*", 1)[0].split(b",")
    if len(fields) <= index or not fields[index]:
        return None
    try:
        return time_of_day_ms(fields[index])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Burst:
    """The lines of one receiver epoch and the GPS seconds since the previous burst (≥ 0)."""

    lines: tuple[bytes, ...]
    gap_s: float
    timed: bool  # False for lines before the first timed sentence


def epochs(lines: Iterable[bytes]) -> Iterator[Burst]:
    """Group lines into bursts. Time going backwards, or a new session, gives a gap of 0."""
    current: list[bytes] = []
    current_tod: int | None = None
    previous_tod: int | None = None
    for line in lines:
        tod = line_time_ms(line)
        if tod is not None and current_tod is not None and tod != current_tod:
            yield Burst(tuple(current), _gap(previous_tod, current_tod), True)
            previous_tod, current = current_tod, []
        if tod is not None and (current_tod is None or tod != current_tod):
            current_tod = tod
        current.append(line)
    if current:
        yield Burst(tuple(current), _gap(previous_tod, current_tod), current_tod is not None)


def _gap(previous: int | None, now: int | None) -> float:
    if previous is None or now is None:
        return 0.0
    delta = now - previous
    if delta < -_DAY_MS // 2:
        delta += _DAY_MS  # midnight
    return max(0, delta) / 1000
