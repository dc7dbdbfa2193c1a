"""Hypothesis: no packet crashes the parser or the pipeline; valid packets round-trip exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tracker.bike.heart_rate.protocol import (
    FLAG_ENERGY,
    FLAG_RR,
    FLAG_UINT16,
    HeartRateMeasurement,
    HeartRatePipeline,
    MalformedMeasurementError,
    encode_heart_rate_measurement,
    parse_heart_rate_measurement,
)

uint16 = st.integers(min_value=0, max_value=0xFFFF)


@st.composite
def measurements(draw: st.DrawFn) -> HeartRateMeasurement:
    """Any measurement the GATT layout can carry, reserved bits included."""
    flags = draw(st.integers(min_value=0, max_value=0xFF))
    bpm = draw(uint16 if flags & FLAG_UINT16 else st.integers(min_value=0, max_value=0xFF))
    energy = draw(uint16) if flags & FLAG_ENERGY else None
    rr = tuple(draw(st.lists(uint16, max_size=9))) if flags & FLAG_RR else ()
    return HeartRateMeasurement(
        flags=flags, bpm=bpm, energy_expended_kj=energy, rr_intervals_1024=rr
    )


@given(st.binary(max_size=40))
def test_random_bytes_parse_or_raise_the_specific_error(data: bytes) -> None:
    error: MalformedMeasurementError | None = None
    try:
        m = parse_heart_rate_measurement(data)
    except MalformedMeasurementError as exc:
        error = exc
    if error is not None:
        assert error.packet == data
        assert error.reason
        return
    # Whatever parsed is exactly what the bytes said: encoding it again gives them back.
    assert encode_heart_rate_measurement(m) == data


@given(measurements())
def test_valid_measurements_round_trip(m: HeartRateMeasurement) -> None:
    packet = encode_heart_rate_measurement(m)
    assert parse_heart_rate_measurement(packet) == m


@given(measurements(), st.integers(min_value=1, max_value=5))
def test_any_truncation_of_a_valid_packet_is_malformed_or_shorter_rr(
    m: HeartRateMeasurement, cut: int
) -> None:
    packet = encode_heart_rate_measurement(m)
    shorter = packet[: max(0, len(packet) - cut)]
    try:
        parsed = parse_heart_rate_measurement(shorter)
    except MalformedMeasurementError:
        return
    # Only whole RR intervals can vanish without the layout noticing.
    assert parsed.flags & FLAG_RR
    assert parsed.bpm == m.bpm
    assert parsed.rr_intervals_1024 == m.rr_intervals_1024[: len(parsed.rr_intervals_1024)]


@given(
    st.lists(
        st.tuples(
            st.one_of(st.binary(max_size=12), measurements().map(encode_heart_rate_measurement)),
            st.floats(min_value=0.0, max_value=3.0),  # gap since the previous packet
            st.booleans(),  # is there a fix yet
        ),
        max_size=60,
    )
)
def test_pipeline_never_crashes_and_keeps_time_strictly_increasing(
    stream: list[tuple[bytes, float, bool]],
) -> None:
    pipe = HeartRatePipeline()
    now = 100.0
    stamps: list[int] = []
    for packet, gap, have_fix in stream:
        now += gap
        sample = pipe.feed(packet, now, (1_700_000_000.25, 100.0) if have_fix else None)
        if sample is not None:
            stamps.append(sample.timestamp)
            assert 20 <= sample.hr <= 250
    assert stamps == sorted(set(stamps))  # one per second at most, strictly increasing
    c = pipe.counters
    dropped = c.malformed + c.no_contact + c.implausible + c.no_gps_time + c.thinned
    assert c.packets == len(stream) == dropped + c.samples == dropped + len(stamps)
