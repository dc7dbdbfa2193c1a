"""A replayed strap plays on the ride's clock: one packet per ride-second whatever the speed at
which the GPS log is replayed (issue 16: at 20x the demo got one sample per 20 ride-seconds)."""

from __future__ import annotations

import asyncio

import pytest

from tracker.bike.heart_rate.source import ReplayHeartRateTransport

T0 = 1_760_000_000.0


class RideClock:
    """GPS time that moves ``ride_s_per_poll`` ride-seconds each time the strap waits: any
    replay speed, from slower than real time to a log read as fast as it comes."""

    def __init__(self, ride_s_per_poll: float, first_fix_after_polls: int = 0) -> None:
        self.step = ride_s_per_poll
        self.polls = 0
        self.first_fix_after = first_fix_after_polls
        self.now: float | None = None

    def __call__(self) -> float | None:
        return self.now

    async def sleep(self, _wall_s: float) -> None:
        self.polls += 1
        if self.polls > self.first_fix_after:
            self.now = T0 if self.now is None else self.now + self.step
        await asyncio.sleep(0)


@pytest.mark.parametrize("ride_s_per_poll", [0.02, 0.4, 1.0, 20.0])
async def test_one_packet_per_ride_second_at_any_replay_speed(ride_s_per_poll: float) -> None:
    clock = RideClock(ride_s_per_poll, first_fix_after_polls=3)
    series = [(float(k), bytes([0x00, 100 + k])) for k in range(30)]
    strap = ReplayHeartRateTransport(series, ride_clock=clock, sleep=clock.sleep)
    played: list[float | None] = []
    stamped: list[float | None] = []

    def on_packet(_packet: bytes, ride_time: float | None = None) -> None:
        played.append(clock())
        stamped.append(ride_time)

    found = await strap.scan("synthetic")
    assert found is not None
    link = await strap.connect(found, on_packet)
    await asyncio.wait_for(link.closed.wait(), 10)  # type: ignore[attr-defined]
    assert None not in played  # nothing plays before the ride has a fix
    assert len(played) == 30
    start = played[0]
    assert start is not None
    for k, at in enumerate(played):
        assert at is not None
        # Packet k plays once the ride is k seconds on, and no later than one wait after that
        # (several packets in one wait when a log is replayed faster than the strap's pace).
        assert start + k <= at + 1e-9 < start + k + ride_s_per_poll + 1e-6
    # Each packet carries the ride time it was played for, so the source stamps it exactly
    # even when several play in one wait (a 0.5 Hz log replayed at 12x).
    assert stamped == [start + k for k in range(30)]
