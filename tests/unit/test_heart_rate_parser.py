"""The 0x2A37 Heart Rate Measurement parser against the GATT layouts, packet by hand-made packet.

Layout (Heart Rate Service spec, little-endian): flags uint8; value uint8 (bit 0 clear) or
uint16 (bit 0 set); energy expended uint16 when bit 3; RR intervals uint16 each (1/1024 s) when
bit 4. Bits 1-2: sensor contact (bit 2 supported, bit 1 detected). Bits 5-7 reserved.
"""

from __future__ import annotations

import itertools

import pytest

from tracker.bike.heart_rate.protocol import (
    HeartRateMeasurement,
    MalformedMeasurementError,
    SensorContact,
    encode_heart_rate_measurement,
    make_flags,
    parse_heart_rate_measurement,
)

# --- hand-made packets, one per typical strap message ----------------------------------------


def test_uint8_value_only() -> None:
    m = parse_heart_rate_measurement(bytes([0x00, 0x48]))
    assert m.bpm == 72
    assert not m.uint16_format
    assert m.sensor_contact is SensorContact.NOT_SUPPORTED
    assert m.energy_expended_kj is None
    assert m.rr_intervals_1024 == ()
    assert not m.has_rr_intervals


def test_uint16_value_only() -> None:
    m = parse_heart_rate_measurement(bytes([0x01, 0x2C, 0x01]))  # 0x012C = 300
    assert m.bpm == 300
    assert m.uint16_format


def test_uint16_small_value_is_allowed() -> None:
    assert parse_heart_rate_measurement(bytes([0x01, 0x50, 0x00])).bpm == 80


def test_polar_style_contact_detected_with_two_rr_intervals() -> None:
    # flags 0x16 = contact supported + detected + RR present; 131 bpm; RR 0x01D5=469, 0x01D9=473
    m = parse_heart_rate_measurement(bytes([0x16, 0x83, 0xD5, 0x01, 0xD9, 0x01]))
    assert m.bpm == 131
    assert m.sensor_contact is SensorContact.DETECTED
    assert m.rr_intervals_1024 == (469, 473)
    assert m.rr_intervals_s == pytest.approx((469 / 1024, 473 / 1024))


def test_energy_expended_then_rr() -> None:
    # flags 0x19 = uint16 + energy + RR; 150 bpm; 1000 kJ; one RR of 410
    m = parse_heart_rate_measurement(bytes([0x19, 0x96, 0x00, 0xE8, 0x03, 0x9A, 0x01]))
    assert m.bpm == 150
    assert m.energy_expended_kj == 1000
    assert m.rr_intervals_1024 == (410,)


def test_contact_supported_but_not_detected() -> None:
    m = parse_heart_rate_measurement(bytes([0x04, 0x00]))
    assert m.sensor_contact is SensorContact.NOT_DETECTED
    assert m.bpm == 0


def test_detected_bit_without_supported_bit_means_not_supported() -> None:
    # Spec: status values 0 and 1 both mean "feature not supported in the current connection".
    m = parse_heart_rate_measurement(bytes([0x02, 0x50]))
    assert m.sensor_contact is SensorContact.NOT_SUPPORTED


def test_rr_flag_with_no_intervals_is_accepted() -> None:
    m = parse_heart_rate_measurement(bytes([0x10, 0x50]))
    assert m.has_rr_intervals
    assert m.rr_intervals_1024 == ()


def test_reserved_bits_are_ignored() -> None:
    m = parse_heart_rate_measurement(bytes([0xE0, 0x50]))
    assert m.bpm == 80
    assert m.energy_expended_kj is None


def test_accepts_bytearray_and_memoryview() -> None:
    assert parse_heart_rate_measurement(bytearray([0, 60])).bpm == 60
    assert parse_heart_rate_measurement(memoryview(bytes([0, 61]))).bpm == 61


# --- every flag combination ------------------------------------------------------------------

VALUE_FORMATS = (False, True)
CONTACT_BITS = (0b00, 0b01, 0b10, 0b11)  # (bit 2, bit 1) as seen in flags >> 1
ENERGY = (False, True)
RR_COUNTS = (None, 0, 1, 3)  # None = RR flag clear


def _hand_made(uint16: bool, contact: int, energy: bool, rr_count: int | None) -> bytes:
    """Build the packet byte by byte, straight from the spec's layout table."""
    flags = (1 if uint16 else 0) | (contact << 1) | (0x08 if energy else 0)
    flags |= 0x10 if rr_count is not None else 0
    out = [flags]
    bpm = 0x01A5 if uint16 else 0x9B  # 421 / 155: the high byte matters in uint16
    out += [bpm & 0xFF, bpm >> 8] if uint16 else [bpm]
    if energy:
        out += [0x34, 0x12]  # 0x1234 = 4660 kJ
    for i in range(rr_count or 0):
        rr = 0x0300 + i  # 768 + i
        out += [rr & 0xFF, rr >> 8]
    return bytes(out)


@pytest.mark.parametrize(
    ("uint16", "contact", "energy", "rr_count"),
    list(itertools.product(VALUE_FORMATS, CONTACT_BITS, ENERGY, RR_COUNTS)),
)
def test_every_flag_combination(
    uint16: bool, contact: int, energy: bool, rr_count: int | None
) -> None:
    packet = _hand_made(uint16, contact, energy, rr_count)
    m = parse_heart_rate_measurement(packet)
    assert m.bpm == (421 if uint16 else 155)
    assert m.uint16_format is uint16
    expected_contact = {
        0b00: SensorContact.NOT_SUPPORTED,
        0b01: SensorContact.NOT_SUPPORTED,
        0b10: SensorContact.NOT_DETECTED,
        0b11: SensorContact.DETECTED,
    }[contact]
    assert m.sensor_contact is expected_contact
    assert m.energy_expended_kj == (4660 if energy else None)
    assert m.has_rr_intervals is (rr_count is not None)
    assert m.rr_intervals_1024 == tuple(768 + i for i in range(rr_count or 0))
    assert encode_heart_rate_measurement(m) == packet  # and back, byte for byte


@pytest.mark.parametrize(
    ("uint16", "contact", "energy", "rr_count"),
    list(itertools.product(VALUE_FORMATS, CONTACT_BITS, ENERGY, RR_COUNTS)),
)
def test_every_flag_combination_truncated_by_one_byte_is_malformed(
    uint16: bool, contact: int, energy: bool, rr_count: int | None
) -> None:
    packet = _hand_made(uint16, contact, energy, rr_count)
    with pytest.raises(MalformedMeasurementError):
        parse_heart_rate_measurement(packet[:-1])


# --- malformed and truncated packets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", "empty packet"),
        (bytes([0x00]), "truncated uint8 heart-rate value"),
        (bytes([0x01, 0x50]), "truncated uint16 heart-rate value"),
        (bytes([0x01]), "truncated uint16 heart-rate value"),
        (bytes([0x08, 0x50]), "truncated energy-expended field"),
        (bytes([0x08, 0x50, 0x01]), "truncated energy-expended field"),
        (bytes([0x10, 0x50, 0x01]), "truncated RR interval (odd byte count)"),
        (
            bytes([0x18, 0x50, 0x01, 0x00, 0x02, 0x03, 0x04]),
            "truncated RR interval (odd byte count)",
        ),
        (bytes([0x00, 0x50, 0x00]), "1 unexpected trailing byte(s)"),
        (bytes([0x06, 0x50, 0xAA, 0xBB]), "2 unexpected trailing byte(s)"),
        (bytes([0x09, 0x50, 0x00, 0x10, 0x00, 0xFF]), "1 unexpected trailing byte(s)"),
    ],
)
def test_malformed_packets_raise_a_specific_error(packet: bytes, reason: str) -> None:
    with pytest.raises(MalformedMeasurementError) as caught:
        parse_heart_rate_measurement(packet)
    assert caught.value.reason == reason
    assert caught.value.packet == packet
    assert isinstance(caught.value, ValueError)
    assert (packet.hex() or "empty") in str(caught.value)


# --- the encoder used by the demo series -----------------------------------------------------


def test_make_flags_matches_the_spec_bits() -> None:
    assert make_flags() == 0x00
    assert make_flags(uint16=True) == 0x01
    assert make_flags(contact=SensorContact.NOT_DETECTED) == 0x04
    assert make_flags(contact=SensorContact.DETECTED) == 0x06
    assert make_flags(energy=True) == 0x08
    assert make_flags(rr=True) == 0x10
    assert make_flags(uint16=True, contact=SensorContact.DETECTED, energy=True, rr=True) == 0x1F


@pytest.mark.parametrize(
    "measurement",
    [
        HeartRateMeasurement(flags=0x00, bpm=256),  # needs uint16
        HeartRateMeasurement(flags=0x01, bpm=70000),
        HeartRateMeasurement(flags=0x08, bpm=60),  # energy flag, no energy
        HeartRateMeasurement(flags=0x00, bpm=60, energy_expended_kj=5),  # energy, no flag
        HeartRateMeasurement(flags=0x00, bpm=60, rr_intervals_1024=(800,)),  # RR, no flag
        HeartRateMeasurement(flags=0x10, bpm=60, rr_intervals_1024=(70000,)),
        HeartRateMeasurement(flags=0x100, bpm=60),
    ],
)
def test_encoder_refuses_what_the_layout_cannot_carry(measurement: HeartRateMeasurement) -> None:
    with pytest.raises(ValueError, match=r"not fit|exactly when|flag bit 4"):
        encode_heart_rate_measurement(measurement)
