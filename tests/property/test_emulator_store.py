"""Properties of the emulator's storage rules (hypothesis, deterministic profile)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.emulator.store import RejectedError, StoredActivity, parse_payload

T0 = 1_763_809_643

timestamps = st.lists(st.integers(0, 10_000), min_size=1, max_size=40, unique=True).map(
    lambda xs: [T0 + x for x in sorted(xs)]
)


def body(ts: list[int]) -> str:
    return json.dumps({"loc": [
        {"lat": 51.0 + (t - T0) * 1e-5, "lon": 1.0, "ele": 2.0, "timestamp": t,
         "unix_timestamp": t} for t in ts]})


@given(timestamps, st.data())
def test_any_split_into_batches_with_retries_stores_each_second_once(ts, data):
    """Batches sent in order, each possibly retried (whole, or resent with the next batch)."""
    activity = StoredActivity(id=1, title="p", activity_type=None, status="private")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(ts) - 1)), max_size=5)))
    batches = [ts[a:b] for a, b in zip([0, *cuts], [*cuts, len(ts)], strict=True) if ts[a:b]]
    sent = 0
    for i, batch in enumerate(batches):
        resend_previous = i > 0 and data.draw(st.booleans())
        payload_ts = (batches[i - 1] + batch) if resend_previous else batch
        payload = parse_payload(body(payload_ts))
        activity.check_append(payload)
        activity.append(payload)
        sent += len(payload_ts)
        if data.draw(st.booleans()):  # a retry after a lost reply
            activity.check_append(payload)
            activity.append(payload)
            sent += len(payload_ts)
    assert [p.timestamp for p in activity.points] == ts
    assert activity.duplicates == sent - len(ts)


@given(timestamps)
def test_out_of_order_requests_are_rejected_whole(ts):
    if len(ts) < 2:
        return
    shuffled = [ts[-1], *ts[:-1]]
    with pytest.raises(RejectedError, match="strictly increase"):
        parse_payload(body(shuffled))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["loc", "hr", "lat", "lon", "ele", "timestamp", "unix_timestamp", "x"]),
        inner, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_arbitrary_json_is_either_accepted_or_rejected_cleanly(value: Any):
    message = ""
    try:
        payload = parse_payload(json.dumps(value))
    except RejectedError as exc:
        message = str(exc)
    else:
        assert payload.loc
        return
    assert message  # a rejection always says why


@given(st.text(max_size=50))
def test_arbitrary_text_never_crashes(text):
    with contextlib.suppress(RejectedError):
        parse_payload(text)
