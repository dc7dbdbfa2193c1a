"""Heart rate from a Bluetooth LE strap, everything above the radio: pure, no I/O.

A strap notifies the GATT *Heart Rate Measurement* characteristic (0x2A37) about once a second.
This module turns those notification payloads into :class:`tracker.model.HeartRateSample` values
ready for the outbox:

1. :func:`parse_heart_rate_measurement` decodes one payload exactly as the Bluetooth *Heart Rate
   Service* specification lays it out (little-endian)::

       flags   uint8   bit 0     heart-rate value format: 0 = uint8, 1 = uint16
                       bits 1-2  sensor contact status: bit 2 = feature supported,
                                 bit 1 = contact detected (only meaningful when bit 2 is set)
                       bit 3     energy expended present
                       bit 4     RR intervals present
                       bits 5-7  reserved for future use (ignored, as the spec requires)
       value   uint8 or uint16   beats per minute
       energy  uint16            kilojoules since the last reset        (when bit 3)
       rr      uint16 * n        beat-to-beat intervals, 1/1024 s each  (when bit 4)

   A payload that does not fit that layout raises :class:`MalformedMeasurementError`; the caller
   counts it and moves on (a garbled notification must never stop the ride).
2. :func:`gps_timestamp` stamps the sample on the GPS clock. The Pi's wall clock may be years off
   after a boot without network, so the arrival time is taken on the *monotonic* clock and
   mapped onto the latest fix: ``gps_unix + (arrival - fix_monotonic)``, floored to the second.
3. :class:`HeartRateThinner` keeps at most one sample per whole second, strictly increasing,
   which is what the API contract requires of uploaded timestamps.

:class:`HeartRatePipeline` chains the three with the plausibility checks and the counters the
status command shows. The adapter (``tracker.bike.heart_rate.source``) only has to feed it bytes
and arrival times, whether those come from a real strap or from a recorded/synthetic series.
"""

from __future__ import annotations

import functools
import math
import random
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from tracker.model import HeartRateSample

# Bluetooth SIG assigned numbers, as the 128-bit UUIDs BLE stacks report.
HEART_RATE_SERVICE_UUID = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT_UUID = "00002a37-0000-1000-8000-00805f9b34fb"

FLAG_UINT16 = 0x01
FLAG_CONTACT_DETECTED = 0x02
FLAG_CONTACT_SUPPORTED = 0x04
FLAG_ENERGY = 0x08
FLAG_RR = 0x10

RR_UNITS_PER_SECOND = 1024

# Values outside this range are not a heart beating under a strap: 0 is what many straps send
# while off the skin, and nobody rides at 300 bpm.
MIN_PLAUSIBLE_BPM = 20
MAX_PLAUSIBLE_BPM = 250

_ADDRESS = re.compile(
    r"^(?:[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}"  # Linux/Windows MAC
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$"  # macOS
)


class MalformedMeasurementError(ValueError):
    """A Heart Rate Measurement payload that does not fit the GATT layout its flags announce."""

    def __init__(self, reason: str, packet: bytes) -> None:
        super().__init__(f"{reason} (packet {packet.hex() or 'empty'})")
        self.reason = reason
        self.packet = packet


class SensorContact(Enum):
    """The two sensor-contact bits, decoded."""

    NOT_SUPPORTED = "not_supported"  # bit 2 clear (bit 1 then means nothing)
    NOT_DETECTED = "not_detected"  # supported, strap not on the skin
    DETECTED = "detected"


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded notification. ``flags`` is kept raw so that encoding it again is exact."""

    flags: int
    bpm: int
    energy_expended_kj: int | None = None
    rr_intervals_1024: tuple[int, ...] = ()

    @property
    def uint16_format(self) -> bool:
        return bool(self.flags & FLAG_UINT16)

    @property
    def sensor_contact(self) -> SensorContact:
        if not self.flags & FLAG_CONTACT_SUPPORTED:
            return SensorContact.NOT_SUPPORTED
        if self.flags & FLAG_CONTACT_DETECTED:
            return SensorContact.DETECTED
        return SensorContact.NOT_DETECTED

    @property
    def has_rr_intervals(self) -> bool:
        return bool(self.flags & FLAG_RR)

    @property
    def rr_intervals_s(self) -> tuple[float, ...]:
        """Beat-to-beat intervals in seconds (the wire unit is 1/1024 s)."""
        return tuple(rr / RR_UNITS_PER_SECOND for rr in self.rr_intervals_1024)


def parse_heart_rate_measurement(data: bytes | bytearray | memoryview) -> HeartRateMeasurement:
    """Decode one 0x2A37 payload; raise MalformedMeasurementError when it does not fit.

    The length must be exactly what the flags announce: a short payload is truncated, and
    bytes left over after the last announced field mean the flags and the data disagree (the
    only variable part, the RR list, must consist of whole uint16 values). The RR flag with no
    value after it is accepted rather than thrown away: the heart-rate value is still good.
    """
    packet = bytes(data)
    size = len(packet)
    if not size:
        raise MalformedMeasurementError("empty packet", packet)
    flags = packet[0]
    if flags & FLAG_UINT16:
        if size < 3:
            raise MalformedMeasurementError("truncated uint16 heart-rate value", packet)
        bpm = packet[1] | packet[2] << 8
        pos = 3
    else:
        if size < 2:
            raise MalformedMeasurementError("truncated uint8 heart-rate value", packet)
        bpm = packet[1]
        pos = 2
    energy: int | None = None
    if flags & FLAG_ENERGY:
        if size < pos + 2:
            raise MalformedMeasurementError("truncated energy-expended field", packet)
        energy = packet[pos] | packet[pos + 1] << 8
        pos += 2
    rest = size - pos
    rr: tuple[int, ...] = ()
    if flags & FLAG_RR:
        if rest % 2:
            raise MalformedMeasurementError("truncated RR interval (odd byte count)", packet)
        if rest:
            rr = _uint16_array(rest // 2).unpack_from(packet, pos)
    elif rest:
        raise MalformedMeasurementError(f"{rest} unexpected trailing byte(s)", packet)
    return HeartRateMeasurement(flags, bpm, energy, rr)


@functools.cache
def _uint16_array(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}H")


def encode_heart_rate_measurement(measurement: HeartRateMeasurement) -> bytes:
    """The payload a strap would send for this measurement (inverse of the parser).

    Used by the synthetic demo series and the round-trip tests. Raises ValueError for values the
    layout cannot carry (a bpm above 255 in uint8 format, fields that contradict the flags).
    """
    flags = measurement.flags
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"flags {flags} do not fit in one byte")
    out = bytearray([flags])
    width = 2 if flags & FLAG_UINT16 else 1
    if not 0 <= measurement.bpm < 256**width:
        raise ValueError(f"bpm {measurement.bpm} does not fit the {8 * width}-bit format")
    out += measurement.bpm.to_bytes(width, "little")
    if bool(flags & FLAG_ENERGY) != (measurement.energy_expended_kj is not None):
        raise ValueError("energy expended must be given exactly when flag bit 3 is set")
    if measurement.energy_expended_kj is not None:
        out += _uint16(measurement.energy_expended_kj, "energy expended")
    if measurement.rr_intervals_1024 and not flags & FLAG_RR:
        raise ValueError("RR intervals given but flag bit 4 is clear")
    for rr in measurement.rr_intervals_1024:
        out += _uint16(rr, "RR interval")
    return bytes(out)


def make_flags(
    *,
    uint16: bool = False,
    contact: SensorContact = SensorContact.NOT_SUPPORTED,
    energy: bool = False,
    rr: bool = False,
) -> int:
    """The flags byte for these options (the canonical encoding of "contact not supported")."""
    flags = FLAG_UINT16 if uint16 else 0
    if contact is SensorContact.DETECTED:
        flags |= FLAG_CONTACT_SUPPORTED | FLAG_CONTACT_DETECTED
    elif contact is SensorContact.NOT_DETECTED:
        flags |= FLAG_CONTACT_SUPPORTED
    if energy:
        flags |= FLAG_ENERGY
    if rr:
        flags |= FLAG_RR
    return flags


def _uint16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit in uint16")
    return value.to_bytes(2, "little")


# --- time ------------------------------------------------------------------------------------

GpsAnchor = tuple[float, float]
"""(gps_unix, monotonic): the latest fix's GPS time and the monotonic clock when it arrived."""


def gps_timestamp(anchor: GpsAnchor | None, arrival_monotonic: float) -> int | None:
    """The whole GPS second at which a sample that arrived at ``arrival_monotonic`` was taken.

    None when there has been no fix yet: the Pi's own clock is not trusted for timestamps.
    """
    if anchor is None:
        return None
    gps_unix, fix_monotonic = anchor
    return math.floor(gps_unix + (arrival_monotonic - fix_monotonic))


class HeartRateThinner:
    """At most one sample per whole second, in strictly increasing time (the first one wins).

    The first reading of a second is kept rather than an average: it is a real reading, and it
    can be queued at once instead of waiting for the second to end.
    """

    __slots__ = ("last_timestamp",)

    def __init__(self, last_timestamp: int | None = None) -> None:
        self.last_timestamp = last_timestamp

    def accept(self, timestamp: int) -> bool:
        """True when a sample at ``timestamp`` should be kept (and remember it)."""
        if self.last_timestamp is not None and timestamp <= self.last_timestamp:
            return False
        self.last_timestamp = timestamp
        return True


# --- the whole path above the radio ----------------------------------------------------------


@dataclass
class HeartRateCounters:
    """What happened to every packet; ``tracker status`` shows these."""

    packets: int = 0  # notifications received
    malformed: int = 0  # did not parse (counted and skipped)
    no_contact: int = 0  # strap reports no skin contact, or a value of 0
    implausible: int = 0  # outside MIN/MAX_PLAUSIBLE_BPM
    no_gps_time: int = 0  # no fix yet, so no trustworthy timestamp
    thinned: int = 0  # a sample for that second was already kept (or time went backwards)
    samples: int = 0  # kept and handed on

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class HeartRatePipeline:
    """Packet bytes + arrival time + latest fix → at most one HeartRateSample, and counters."""

    counters: HeartRateCounters = field(default_factory=HeartRateCounters)
    thinner: HeartRateThinner = field(default_factory=HeartRateThinner)
    last_error: str | None = None  # why the last malformed packet was rejected
    last_sample: HeartRateSample | None = None

    def feed(
        self, packet: bytes, arrival_monotonic: float, anchor: GpsAnchor | None
    ) -> HeartRateSample | None:
        """The sample this notification contributes, or None (and a counter says why)."""
        c = self.counters
        c.packets += 1
        try:
            measurement = parse_heart_rate_measurement(packet)
        except MalformedMeasurementError as exc:
            c.malformed += 1
            self.last_error = str(exc)
            return None
        if measurement.sensor_contact is SensorContact.NOT_DETECTED or measurement.bpm == 0:
            c.no_contact += 1
            return None
        if not MIN_PLAUSIBLE_BPM <= measurement.bpm <= MAX_PLAUSIBLE_BPM:
            c.implausible += 1
            return None
        timestamp = gps_timestamp(anchor, arrival_monotonic)
        if timestamp is None:
            c.no_gps_time += 1
            return None
        if not self.thinner.accept(timestamp):
            c.thinned += 1
            return None
        c.samples += 1
        self.last_sample = HeartRateSample(timestamp=timestamp, hr=measurement.bpm)
        return self.last_sample


# --- matching a strap in a scan --------------------------------------------------------------


def looks_like_address(device: str) -> bool:
    """True for a BLE address (AA:BB:CC:DD:EE:FF, or the UUID macOS uses instead)."""
    return bool(_ADDRESS.match(device))


def strap_matches(
    device: str, address: str, names: Sequence[str | None], service_uuids: Sequence[str]
) -> bool:
    """Does an advertisement match the configured ``device``?

    ``"auto"``: the first device advertising the Heart Rate service. An address: that address,
    case-insensitively. Anything else: the advertised local name or the device name, exactly.
    """
    if device == "auto":
        return HEART_RATE_SERVICE_UUID in (u.lower() for u in service_uuids)
    if looks_like_address(device):
        return address.lower() == device.lower()
    return any(name == device for name in names if name)


# --- reconnecting ----------------------------------------------------------------------------


# --- demo series -----------------------------------------------------------------------------


def synthetic_ride_packets(
    seed: int = 1, *, interval_s: float = 1.0
) -> Iterator[tuple[float, bytes]]:
    """An endless, deterministic series of (offset seconds, 0x2A37 payload) like a ride.

    Warm-up from about 85 bpm towards 145 with slow climbs and easings, beat-to-beat RR
    intervals consistent with the rate, contact detected, energy expended every tenth packet
    and the 16-bit value format now and then: the same variety a real strap sends, so the demo
    exercises the whole parser.
    """
    rng = random.Random(seed)
    energy = 0
    n = 0
    while True:
        t = n * interval_s
        warm = 1.0 - math.exp(-t / 180.0)
        bpm_f = 85 + 60 * warm + 12 * math.sin(t / 97.0) + 5 * math.sin(t / 23.0)
        bpm = max(MIN_PLAUSIBLE_BPM, min(MAX_PLAUSIBLE_BPM, round(bpm_f + rng.gauss(0, 1.5))))
        beats = max(1, round(bpm * interval_s / 60))
        rr = tuple(
            max(1, round(RR_UNITS_PER_SECOND * 60 / bpm * (1 + rng.gauss(0, 0.02))))
            for _ in range(beats)
        )
        energy = min(0xFFFF, energy + round(bpm * interval_s / 20))
        with_energy = n % 10 == 0
        flags = make_flags(
            uint16=n % 7 == 3, contact=SensorContact.DETECTED, energy=with_energy, rr=True
        )
        measurement = HeartRateMeasurement(
            flags=flags,
            bpm=bpm,
            energy_expended_kj=energy if with_energy else None,
            rr_intervals_1024=rr,
        )
        yield t, encode_heart_rate_measurement(measurement)
        n += 1


def parse_packet_recording(text: str) -> list[tuple[float, bytes]]:
    """Read a recorded series: one ``<seconds since start> <payload hex>`` per line.

    ``#`` starts a comment; blank lines are skipped. Hex may contain spaces or colons between
    bytes (as ``btmon`` and nRF Connect print them). Offsets must not go backwards. A line that
    cannot be read raises ValueError naming the line; payloads are not validated here, so a
    recording can carry the malformed packets a strap really sent (the pipeline counts them).
    """
    series: list[tuple[float, bytes]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        offset_text, _, hex_text = line.partition(" ")
        try:
            offset = float(offset_text)
            payload = bytes.fromhex(hex_text.replace(":", " "))
        except ValueError:
            raise ValueError(
                f"line {number}: expected '<seconds> <hex bytes>', got {raw.strip()!r}"
            ) from None
        if not math.isfinite(offset) or offset < 0:
            raise ValueError(f"line {number}: offset {offset_text!r} is not a time >= 0")
        if series and offset < series[-1][0]:
            raise ValueError(f"line {number}: offset {offset} goes back in time")
        series.append((offset, payload))
    return series


def format_packet_recording(series: Sequence[tuple[float, bytes]]) -> str:
    """The text form :func:`parse_packet_recording` reads (to save a series for a later demo)."""
    return "".join(f"{offset:g} {payload.hex(' ')}\n" for offset, payload in series)


# --- status ----------------------------------------------------------------------------------


def describe_heart_rate_status(status: Mapping[str, Any]) -> str:
    """One line for ``tracker status`` from ``heart_rate.source.heart_rate_status()``."""
    state = str(status.get("state", "disabled"))
    if state == "disabled":
        return "heart rate: disabled"
    parts = [f"heart rate: {state}"]
    if status.get("device"):
        parts[0] += f" ({status['device']})"
    if status.get("last_hr") is not None:
        parts.append(f"last {status['last_hr']} bpm at GPS time {status.get('last_timestamp')}")
    else:
        parts.append("no reading yet")
    malformed = status.get("malformed", 0)
    if malformed:
        parts.append(f"{malformed} malformed packet(s) skipped")
    if status.get("last_error") and state != "connected":
        parts.append(f"last problem: {status['last_error']}")
    return ", ".join(parts)


def heart_rate_status_lines(status: Mapping[str, Any]) -> list[str]:
    """The ``heart_rate`` section of ``tracker status`` in the form its RENDERERS return."""
    return [describe_heart_rate_status(status)]
