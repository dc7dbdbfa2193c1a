"""The emulator's storage rules, without HTTP: validation, retries, state round trip."""

from __future__ import annotations

import json

import pytest

from tracker.emulator.store import (
    ActivityStore,
    Payload,
    RejectedError,
    StoredActivity,
    StoredHeartRate,
    StoredPoint,
    parse_activity_id,
    parse_activity_type,
    parse_payload,
    parse_status,
)

T0 = 1_763_809_643


def raw(*timestamps: int, hr: tuple[int, ...] = ()) -> str:
    body: dict[str, object] = {"loc": [
        {"lat": 51.0, "lon": 1.0, "ele": 3.5, "timestamp": t, "unix_timestamp": t}
        for t in timestamps]}
    if hr:
        body["hr"] = [{"hr": 100 + i, "timestamp": t, "unix_timestamp": t}
                      for i, t in enumerate(hr)]
    return json.dumps(body)


def activity() -> StoredActivity:
    return StoredActivity(id=1, title="t", activity_type=None, status="private")


def test_parse_payload_keeps_order_and_values():
    payload = parse_payload(raw(T0, T0 + 2, hr=(T0,)))
    assert payload.loc == (StoredPoint(T0, 51.0, 1.0, 3.5), StoredPoint(T0 + 2, 51.0, 1.0, 3.5))
    assert payload.hr == (StoredHeartRate(T0, 100),)


def test_heart_rate_without_a_point_is_refused_as_the_contract_says():
    body = json.dumps({"loc": [], "hr": [{"hr": 99, "timestamp": T0, "unix_timestamp": T0}]})
    with pytest.raises(RejectedError, match="at least one"):
        parse_payload(body)
    with pytest.raises(RejectedError, match="at least one"):
        parse_payload('{"loc": []}')


@pytest.mark.parametrize("value", [True, "1763809643", 1763809643.0, None])
def test_timestamps_must_be_json_integers(value):
    body = json.dumps({"loc": [{"lat": 1, "lon": 1, "timestamp": value,
                                "unix_timestamp": value}]})
    with pytest.raises(RejectedError, match="whole UTC second"):
        parse_payload(body)


@pytest.mark.parametrize("value", [float("nan"), True, "1"])
def test_coordinates_must_be_finite_numbers(value):
    body = json.dumps({"loc": [{"lat": value, "lon": 1, "timestamp": T0,
                                "unix_timestamp": T0}]})
    with pytest.raises(RejectedError, match="lat"):
        parse_payload(body)


def test_boundaries_of_ranges_are_accepted():
    body = json.dumps({"loc": [
        {"lat": -90, "lon": -180, "timestamp": T0, "unix_timestamp": T0},
        {"lat": 90, "lon": 180, "ele": -430.5, "timestamp": T0 + 1, "unix_timestamp": T0 + 1}]})
    assert len(parse_payload(body).loc) == 2


def test_append_stores_new_and_counts_retries():
    a = activity()
    first = parse_payload(raw(T0, T0 + 1))
    a.check_append(first)
    assert a.append(first) == (2, 0)
    retry = parse_payload(raw(T0 + 1, T0 + 2))
    a.check_append(retry)
    assert a.append(retry) == (1, 1)
    assert [p.timestamp for p in a.points] == [T0, T0 + 1, T0 + 2]
    assert a.duplicates == 1
    assert a.conflicting_duplicates == 0


def test_a_retry_with_a_different_position_is_counted_as_a_conflict():
    a = activity()
    a.append(Payload((StoredPoint(T0, 1.0, 1.0),)))
    a.append(Payload((StoredPoint(T0, 1.5, 1.0),)))
    assert a.points == [StoredPoint(T0, 1.0, 1.0)]
    assert (a.duplicates, a.conflicting_duplicates) == (1, 1)


def test_an_older_timestamp_that_is_not_a_retry_is_rejected():
    a = activity()
    a.append(Payload((StoredPoint(T0, 1, 1), StoredPoint(T0 + 10, 1, 1))))
    with pytest.raises(RejectedError, match="not after"):
        a.check_append(Payload((StoredPoint(T0 + 5, 1, 1),)))
    a.check_append(Payload((StoredPoint(T0, 1, 1), StoredPoint(T0 + 10, 1, 1))))


def test_heart_rate_follows_the_same_rules():
    a = activity()
    a.append(Payload((), (StoredHeartRate(T0, 100), StoredHeartRate(T0 + 5, 101))))
    with pytest.raises(RejectedError, match="hr timestamp"):
        a.check_append(Payload((), (StoredHeartRate(T0 + 3, 100),)))
    a.append(Payload((), (StoredHeartRate(T0 + 5, 101), StoredHeartRate(T0 + 6, 102))))
    assert [s.timestamp for s in a.hr] == [T0, T0 + 5, T0 + 6]
    assert a.hr_duplicates == 1


def test_field_parsers():
    assert parse_status("public") == "public"
    with pytest.raises(RejectedError):
        parse_status("PUBLIC")
    assert parse_activity_type("stand up paddle boarding", required=True)
    assert parse_activity_type("", required=False) is None
    with pytest.raises(RejectedError):
        parse_activity_type(None, required=True)
    assert parse_activity_id("1000001") == 1000001
    for bad in ("", "-1", "1.0", "x", None):
        with pytest.raises(RejectedError):
            parse_activity_id(bad)


def test_store_round_trips_through_json():
    store = ActivityStore()
    a = store.add(StoredActivity(id=store.new_id(), title="A", activity_type="cycling",
                           status="public", tags="x"))
    a.append(Payload((StoredPoint(T0, 1, 2, None), StoredPoint(T0 + 1, 1, 2, 5.0)),
                     (StoredHeartRate(T0, 120),)))
    a.append(Payload((StoredPoint(T0 + 1, 1, 2, 5.0),)))
    a.count("updateActivity", "ok")
    a.state = "stopped"
    again = ActivityStore()
    again.load_json(json.loads(json.dumps(store.to_json())))
    assert again.as_list() == store.as_list()
    assert again.new_id() == a.id + 1
    # The rebuilt index still recognises retries.
    b = again.get(a.id)
    assert b is not None
    assert b.append(Payload((StoredPoint(T0, 1, 2, None),))) == (0, 1)
    assert again.by_title("A") is b
    assert again.by_title("") is None
