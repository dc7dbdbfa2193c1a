"""GPS-clock stamping, one-per-second thinning, counters, strap matching, backoff, demo series."""

from __future__ import annotations

import itertools

import pytest

from tracker.bike.heart_rate.protocol import (
    HEART_RATE_SERVICE_UUID,
    HeartRateMeasurement,
    HeartRatePipeline,
    HeartRateThinner,
    SensorContact,
    describe_heart_rate_status,
    encode_heart_rate_measurement,
    format_packet_recording,
    gps_timestamp,
    looks_like_address,
    make_flags,
    parse_heart_rate_measurement,
    parse_packet_recording,
    strap_matches,
    synthetic_ride_packets,
)
from tracker.model import HeartRateSample

FIX_GPS = 1_563_809_643.4  # the contract's example second, with a fraction
FIX_MONO = 5_000.0


def packet(bpm: int, contact: SensorContact = SensorContact.DETECTED) -> bytes:
    return encode_heart_rate_measurement(
        HeartRateMeasurement(flags=make_flags(contact=contact, uint16=bpm > 255), bpm=bpm)
    )


# --- GPS clock -------------------------------------------------------------------------------


def test_arrival_is_mapped_onto_the_latest_fix_time() -> None:
    anchor = (FIX_GPS, FIX_MONO)
    assert gps_timestamp(anchor, FIX_MONO) == 1_563_809_643
    assert gps_timestamp(anchor, FIX_MONO + 0.5) == 1_563_809_643  # 643.9
    assert gps_timestamp(anchor, FIX_MONO + 0.6) == 1_563_809_644  # 644.0
    assert gps_timestamp(anchor, FIX_MONO + 125.0) == 1_563_809_768


def test_arrival_before_the_fix_was_seen_maps_to_an_earlier_second() -> None:
    assert gps_timestamp((FIX_GPS, FIX_MONO), FIX_MONO - 2.0) == 1_563_809_641


def test_no_fix_means_no_timestamp() -> None:
    assert gps_timestamp(None, FIX_MONO) is None


def test_the_pis_wall_clock_plays_no_part() -> None:
    # Same arrival relative to the fix, wildly different monotonic origins: same GPS second.
    assert gps_timestamp((FIX_GPS, 0.0), 10.0) == gps_timestamp((FIX_GPS, 9e6), 9e6 + 10.0)


# --- thinning --------------------------------------------------------------------------------


def test_thinner_keeps_the_first_sample_of_each_second() -> None:
    thinner = HeartRateThinner()
    assert [thinner.accept(t) for t in (10, 10, 11, 11, 11, 13)] == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]


def test_thinner_refuses_time_going_backwards() -> None:
    thinner = HeartRateThinner(last_timestamp=100)
    assert not thinner.accept(99)
    assert not thinner.accept(100)
    assert thinner.accept(101)


# --- the pipeline ----------------------------------------------------------------------------


def test_pipeline_stamps_thins_and_counts() -> None:
    pipe = HeartRatePipeline()
    anchor = (FIX_GPS, FIX_MONO)
    out = [
        pipe.feed(packet(120), FIX_MONO + 0.0, anchor),  # 643 kept
        pipe.feed(packet(121), FIX_MONO + 0.3, anchor),  # 643 thinned
        pipe.feed(packet(122), FIX_MONO + 0.7, anchor),  # 644 kept
        pipe.feed(b"\x10\x50\x01", FIX_MONO + 1.1, anchor),  # malformed
        pipe.feed(packet(0, SensorContact.NOT_DETECTED), FIX_MONO + 2.0, anchor),  # off skin
        pipe.feed(packet(0, SensorContact.NOT_SUPPORTED), FIX_MONO + 2.5, anchor),  # value 0
        pipe.feed(packet(300), FIX_MONO + 3.0, anchor),  # implausible
        pipe.feed(packet(19), FIX_MONO + 3.1, anchor),  # implausible
        pipe.feed(packet(123), FIX_MONO + 4.0, None),  # no fix yet
        pipe.feed(packet(124), FIX_MONO + 5.0, anchor),  # 648 kept
    ]
    assert out == [
        HeartRateSample(timestamp=1_563_809_643, hr=120),
        None,
        HeartRateSample(timestamp=1_563_809_644, hr=122),
        None,
        None,
        None,
        None,
        None,
        None,
        HeartRateSample(timestamp=1_563_809_648, hr=124),
    ]
    assert pipe.counters.as_dict() == {
        "packets": 10,
        "malformed": 1,
        "no_contact": 2,
        "implausible": 2,
        "no_gps_time": 1,
        "thinned": 1,
        "samples": 3,
    }
    assert pipe.last_sample == HeartRateSample(timestamp=1_563_809_648, hr=124)
    assert pipe.last_error is not None
    assert "truncated RR interval" in pipe.last_error


def test_pipeline_accepts_contact_not_supported() -> None:
    pipe = HeartRatePipeline()
    sample = pipe.feed(packet(90, SensorContact.NOT_SUPPORTED), 1.0, (1000.0, 0.0))
    assert sample == HeartRateSample(timestamp=1001, hr=90)


def test_a_new_fix_moves_the_mapping_but_never_back_in_time() -> None:
    pipe = HeartRatePipeline()
    assert pipe.feed(packet(100), 10.0, (2000.0, 9.0)) == HeartRateSample(2001, 100)
    # A later fix says the GPS clock is 3 s behind what we assumed: samples for seconds
    # already sent are dropped rather than sent out of order.
    assert pipe.feed(packet(101), 11.0, (1998.0, 11.0)) is None
    assert pipe.counters.thinned == 1
    # 1998 + (14 - 11) = 2001 is still the second already sent; 2002 is new.
    assert pipe.feed(packet(102), 14.0, (1998.0, 11.0)) is None
    assert pipe.feed(packet(103), 15.0, (1998.0, 11.0)) == HeartRateSample(2002, 103)


# --- which strap ----------------------------------------------------------------------------


def test_auto_takes_any_device_advertising_the_heart_rate_service() -> None:
    assert strap_matches("auto", "AA:BB:CC:DD:EE:FF", ("Polar H10",), [HEART_RATE_SERVICE_UUID])
    assert strap_matches("auto", "AA:BB:CC:DD:EE:FF", (None,), [HEART_RATE_SERVICE_UUID.upper()])
    assert not strap_matches("auto", "AA:BB:CC:DD:EE:FF", ("Polar H10",), [])
    assert not strap_matches(
        "auto", "AA:BB:CC:DD:EE:FF", ("Speaker",), ["0000110b-0000-1000-8000-00805f9b34fb"]
    )


def test_an_address_matches_case_insensitively_and_only_that_device() -> None:
    assert strap_matches("aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF", (), [])
    assert not strap_matches("aa:bb:cc:dd:ee:00", "AA:BB:CC:DD:EE:FF", ("x",), [])
    mac_uuid = "12345678-9ABC-DEF0-1234-56789ABCDEF0"
    assert looks_like_address(mac_uuid)
    assert strap_matches(mac_uuid, mac_uuid.lower(), (), [])


def test_a_name_matches_the_local_name_or_the_device_name_exactly() -> None:
    assert strap_matches("Polar H10 8E1F", "AA:BB:CC:DD:EE:FF", (None, "Polar H10 8E1F"), [])
    assert strap_matches("Polar H10 8E1F", "AA:BB:CC:DD:EE:FF", ("Polar H10 8E1F", None), [])
    assert not strap_matches("Polar H10", "AA:BB:CC:DD:EE:FF", ("Polar H10 8E1F",), [])
    assert not looks_like_address("Polar H10")


# --- recorded and synthetic series -----------------------------------------------------------


def test_recording_text_round_trips() -> None:
    series = [(0.0, bytes([0x16, 0x83, 0xD5, 0x01])), (1.02, bytes([0x00, 0x50])), (2.5, b"")]
    assert parse_packet_recording(format_packet_recording(series)) == series


def test_recording_reads_comments_blank_lines_and_separators() -> None:
    text = "# strap: Polar H10\n\n0 16 83 d5 01   # first beat\n1.0 00:50\n2 0050\n"
    assert parse_packet_recording(text) == [
        (0.0, bytes([0x16, 0x83, 0xD5, 0x01])),
        (1.0, bytes([0x00, 0x50])),
        (2.0, bytes([0x00, 0x50])),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zero 0050\n", "line 1: expected"),
        ("0 0050\n1 zz\n", "line 2: expected"),
        ("-1 0050\n", "line 1: offset '-1'"),
        ("nan 0050\n", "line 1: offset 'nan'"),
        ("2 0050\n1 0050\n", "line 2: offset 1.0 goes back"),
    ],
)
def test_recording_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_packet_recording(text)


def test_synthetic_series_is_deterministic_valid_and_varied() -> None:
    first = list(itertools.islice(synthetic_ride_packets(seed=3), 600))
    again = list(itertools.islice(synthetic_ride_packets(seed=3), 600))
    other = list(itertools.islice(synthetic_ride_packets(seed=4), 600))
    assert first == again
    assert first != other
    assert [t for t, _ in first[:3]] == [0.0, 1.0, 2.0]
    measurements = [parse_heart_rate_measurement(p) for _, p in first]
    bpms = [m.bpm for m in measurements]
    assert 70 <= min(bpms) < 100 < 130 < max(bpms) <= 180  # a warm-up into a ride
    assert all(m.sensor_contact is SensorContact.DETECTED for m in measurements)
    assert any(m.uint16_format for m in measurements)
    assert any(not m.uint16_format for m in measurements)
    assert any(m.energy_expended_kj is not None for m in measurements)
    for m in measurements:  # RR intervals agree with the rate within a few percent
        mean_rr_s = sum(m.rr_intervals_s) / len(m.rr_intervals_s)
        assert 60 / mean_rr_s == pytest.approx(m.bpm, rel=0.1)


# --- status line -----------------------------------------------------------------------------


def test_status_line_for_each_state() -> None:
    assert describe_heart_rate_status({"state": "disabled"}) == "heart rate: disabled"
    assert describe_heart_rate_status({}) == "heart rate: disabled"
    assert describe_heart_rate_status(
        {
            "state": "connected",
            "device": "Polar H10 (AA:BB:CC:DD:EE:FF)",
            "last_hr": 131,
            "last_timestamp": 1563809643,
            "malformed": 2,
            "last_error": "ignored while connected",
        }
    ) == (
        "heart rate: connected (Polar H10 (AA:BB:CC:DD:EE:FF)), last 131 bpm at GPS time "
        "1563809643, 2 malformed packet(s) skipped"
    )
    assert (
        describe_heart_rate_status(
            {"state": "scanning", "device": "auto", "last_hr": None, "last_error": "scan failed: x"}
        )
        == "heart rate: scanning (auto), no reading yet, last problem: scan failed: x"
    )


def test_status_lines_for_the_status_command() -> None:
    from tracker.bike.heart_rate.protocol import heart_rate_status_lines

    assert heart_rate_status_lines({"state": "disabled"}) == ["heart rate: disabled"]
