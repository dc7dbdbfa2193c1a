"""Shared pieces of the heart-rate tests: a manual clock, the fake radio, packets.

:class:`FakeRadio` stands in for the Bluetooth layer only (there is no Bluetooth adapter on the
build machine), behind the same ``HeartRateTransport`` interface the bleak transport implements.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from tracker.bike.heart_rate.protocol import (
    HeartRateMeasurement,
    SensorContact,
    encode_heart_rate_measurement,
    make_flags,
)
from tracker.bike.heart_rate.source import FoundStrap, HeartRateLink, PacketCallback

GPS_AT_START = 1_700_000_000.0  # the GPS time of the fix seen at monotonic START
START = 1_000.0


class ManualClock:
    """A monotonic clock that moves only when the test says; ``sleep`` waits for it."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    def pending(self) -> list[float]:
        """Remaining delays of the sleeps in progress."""
        return sorted(d - self.now for d, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now = target
        await settle()


async def settle() -> None:
    """Let every task that can run, run (no time passes: the clock is manual)."""
    for _ in range(30):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something the code under test does; the timeout is only a safety net."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the code under test sets no event for this
            await asyncio.sleep(0)


class FakeLink:
    def __init__(self, on_packet: PacketCallback) -> None:
        self.on_packet = on_packet
        self.dropped = asyncio.Event()
        self.closed = False
        self.error: Exception | None = None

    def notify(self, packet: bytes) -> None:
        assert not self.closed, "the source closed this link"
        self.on_packet(packet)

    def drop(self, error: Exception | None = None) -> None:
        """The strap goes away; with ``error``, the stack reports the loss as that error."""
        self.error = error
        self.dropped.set()

    async def wait_closed(self) -> None:
        await self.dropped.wait()
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        self.closed = True


class FakeRadio:
    """The Bluetooth layer, scriptable: a strap in or out of range, a stack that fails."""

    strap = FoundStrap(address="AA:BB:CC:DD:EE:01", name="Fake H10", handle=object())

    def __init__(self) -> None:
        self.in_range = True
        self.scan_error: Exception | None = None
        self.connect_error: Exception | None = None
        self.scans: list[str] = []
        self.links: list[FakeLink] = []

    async def scan(self, device: str) -> FoundStrap | None:
        self.scans.append(device)
        if self.scan_error is not None:
            raise self.scan_error
        return self.strap if self.in_range else None

    async def connect(self, strap: FoundStrap, on_packet: PacketCallback) -> HeartRateLink:
        assert strap is self.strap
        if self.connect_error is not None:
            raise self.connect_error
        link = FakeLink(on_packet)
        self.links.append(link)
        return link


class Fix:
    """What the engine hands the source: (gps_unix, monotonic) of the latest fix, or None."""

    def __init__(self, anchor: tuple[float, float] | None = (GPS_AT_START, START)) -> None:
        self.anchor = anchor

    def __call__(self) -> tuple[float, float] | None:
        return self.anchor


def hr_packet(bpm: int, contact: SensorContact = SensorContact.DETECTED, rr: int = 800) -> bytes:
    flags = make_flags(contact=contact, rr=True, uint16=bpm > 200)
    return encode_heart_rate_measurement(
        HeartRateMeasurement(flags=flags, bpm=bpm, rr_intervals_1024=(rr,))
    )
