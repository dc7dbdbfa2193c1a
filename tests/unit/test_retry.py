"""The one backoff every retry loop uses: a policy value and one loop's state under it."""

from __future__ import annotations

import pytest

from tracker.retry import RECONNECT, STRAP_RECONNECT, SUPERVISOR, Backoff, RetryPolicy


class FakeSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_backoff_doubles_to_a_cap_and_resets() -> None:
    sleep = FakeSleep()
    backoff = Backoff(RetryPolicy(initial_s=1.0, max_s=10.0, jitter=0), sleep)
    for _ in range(6):
        await backoff.wait()
    assert sleep.slept == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.attempt == 6
    backoff.reset()
    assert await backoff.wait() == 1.0


def test_jitter_comes_from_the_injected_draw_and_retry_after_wins() -> None:
    draws = iter([0.0, 0.99, 0.5])
    backoff = Backoff(RetryPolicy(initial_s=2.0, max_s=60.0, jitter=0.5), FakeSleep(),
                      draw=lambda: next(draws))  # fmt: skip
    assert backoff.failure() == 2.0
    assert backoff.failure() == pytest.approx(4.0 * (1 - 0.5 * 0.99))
    assert backoff.failure(retry_after=30.0) == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0}, {"initial_s": 5, "max_s": 1}, {"multiplier": 0.5}, {"jitter": 2}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"initial_s|jitter"):
        RetryPolicy(**kwargs)


def test_declared_local_reconnects_have_no_jitter() -> None:
    # One receiver, one strap, one tracker: nobody to stampede, so waits are predictable.
    for policy in (RECONNECT, STRAP_RECONNECT, SUPERVISOR):
        assert policy.jitter == 0
