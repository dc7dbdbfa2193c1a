"""The values that flow through the tracker: receiver fixes, uploadable points, heart-rate samples.

Frozen, slotted dataclasses: cheap to create (a Pi Zero makes 1-10 of them a second, replays make
hundreds of thousands), safe to share between tasks, and trivially comparable in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class FixMode(IntEnum):
    """Fix dimension, numbered as gpsd's TPV ``mode``."""

    UNKNOWN = 0
    NO_FIX = 1
    FIX_2D = 2
    FIX_3D = 3


@dataclass(frozen=True, slots=True)
class Fix:
    """One receiver epoch: everything the receiver said about one UTC instant.

    ``time`` always comes from the receiver (RMC/ZDA date + sentence time), never from the
    Pi's clock, which may be years off after a boot without network. ``time`` is timezone-aware
    UTC; ``unix`` is the same instant as float seconds, kept because every consumer needs it.
    """

    time: datetime
    unix: float
    lat: float
    lon: float
    mode: FixMode = FixMode.FIX_2D
    alt_msl: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    sats: int | None = None
    hdop: float | None = None

    def _key(self) -> tuple[object, ...]:
        # An epoch without a position has NaN coordinates, and NaN never equals itself: with
        # the generated __eq__ two such epochs compared equal only when they happened to share
        # one NaN object (the interpreted decoder used one constant; the compiled one makes a
        # new float per fix). Equality means "the same fields", NaN included.
        return (
            self.time,
            self.unix,
            None if self.lat != self.lat else self.lat,
            None if self.lon != self.lon else self.lon,
            self.mode,
            self.alt_msl,
            self.speed_mps,
            self.course_deg,
            self.sats,
            self.hdop,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fix):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, slots=True)
class Point:
    """What gets uploaded: one whole UTC second, 6-decimal WGS84 position, elevation in metres."""

    timestamp: int
    lat: float
    lon: float
    ele: float | None = None


@dataclass(frozen=True, slots=True)
class HeartRateSample:
    """One heart-rate reading, stamped on the GPS clock (whole UTC second)."""

    timestamp: int
    hr: int
