"""The activity state machine and the retry policy: pure logic, every transition checked."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.retry import RetryPolicy
from tracker.ride.activity import (
    Activity,
    ActivityState,
    Event,
    InvalidTransition,
    button_event,
    make_title,
    next_state,
)

S = ActivityState


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (S.IDLE, Event.START, S.RECORDING),
        (S.RECORDING, Event.STOP, S.STOPPING),
        (S.STOPPING, Event.STOP_CONFIRMED, S.STOPPED),
        (S.STOPPING, Event.UPLOAD_CONFIRMED, S.UPLOADED),
        (S.STOPPED, Event.UPLOAD_CONFIRMED, S.UPLOADED),
        # harmless repeats are no-ops
        (S.RECORDING, Event.START, S.RECORDING),
        (S.IDLE, Event.STOP, S.IDLE),
        (S.STOPPING, Event.STOP, S.STOPPING),
        (S.STOPPED, Event.STOP_CONFIRMED, S.STOPPED),
        # a finished ride leaves the rider free to start the next one
        (S.STOPPED, Event.START, S.RECORDING),
        (S.UPLOADED, Event.START, S.RECORDING),
    ],
)
def test_transitions(state: ActivityState, event: Event, after: ActivityState) -> None:
    assert next_state(state, event) is after


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.IDLE, Event.STOP_CONFIRMED),
        (S.RECORDING, Event.STOP_CONFIRMED),  # stop must come first: points are still coming
        (S.RECORDING, Event.UPLOAD_CONFIRMED),
        (S.IDLE, Event.UPLOAD_CONFIRMED),
        (S.UPLOADED, Event.STOP_CONFIRMED),
    ],
)
def test_invalid_transitions_raise(state: ActivityState, event: Event) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, event)


def test_button_toggles() -> None:
    assert button_event(S.IDLE) is Event.START
    assert button_event(S.RECORDING) is Event.STOP
    assert button_event(S.STOPPING) is Event.START  # the next ride may start while one drains
    assert button_event(S.STOPPED) is Event.START


def test_activity_lifecycle_and_flags() -> None:
    act = Activity(local_id=1, title="t", state=S.RECORDING)
    assert act.is_open
    assert not act.needs_stop_request
    act = act.apply(Event.STOP)
    assert act.state is S.STOPPING
    assert act.needs_stop_request
    assert not act.needs_upload
    done = act.apply(Event.STOP_CONFIRMED)
    assert done.state is S.STOPPED
    assert not done.is_open
    with pytest.raises(InvalidTransition):
        done.apply(Event.START)  # a finished activity never restarts: a new one is made
    offline = Activity(local_id=2, title="u", state=S.STOPPING, upload_only=True)
    assert offline.needs_upload
    assert not offline.needs_stop_request
    assert offline.apply(Event.UPLOAD_CONFIRMED).state is S.UPLOADED


def test_titles_are_readable_and_carry_the_random_id() -> None:
    start = datetime(2026, 5, 4, 7, 30, 12)
    assert make_title("Ride", start, "a1b2c3") == "Ride 2026-05-04 07:30 a1b2c3"
    assert make_title("  ", start, "ff00aa") == "2026-05-04 07:30 ff00aa"
    with pytest.raises(ValueError, match="random_id"):
        make_title("Ride", start, "")


@given(st.lists(st.text(alphabet="0123456789abcdef", min_size=6, max_size=6), unique=True))
def test_distinct_random_ids_give_distinct_titles_in_the_same_minute(ids: list[str]) -> None:
    start = datetime(2026, 1, 1, 0, 0)
    titles = {make_title("Ride", start, i) for i in ids}
    assert len(titles) == len(ids)


def test_retry_policy_grows_caps_and_jitters() -> None:
    policy = RetryPolicy(initial_s=1, multiplier=2, max_s=60, jitter=0.5)
    assert [policy.delay(n, 0.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(3, 0.999) == pytest.approx(4 * (1 - 0.5 * 0.999))
    assert policy.delay(10_000, 0.0) == 60  # never overflows, never gives up


def test_retry_policy_honours_retry_after_within_the_cap() -> None:
    policy = RetryPolicy(initial_s=1, max_s=60)
    assert policy.delay(1, 0.0, retry_after=30) == 30
    assert policy.delay(1, 0.0, retry_after=0.1) == 1
    assert policy.delay(1, 0.0, retry_after=86_400) == 60


@given(st.integers(1, 200), st.floats(0, 0.999999), st.none() | st.floats(0, 1e6))
def test_retry_delay_is_always_positive_and_bounded(
    attempt: int, draw: float, retry_after: float | None
) -> None:
    policy = RetryPolicy(initial_s=0.5, multiplier=3, max_s=120, jitter=0.8)
    delay = policy.delay(attempt, draw, retry_after)
    assert 0 < delay <= 120


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        RetryPolicy(initial_s=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().delay(0, 0.5)
