"""Hypothesis drives HeartRateSource through random radio weather; its promises always hold.

Random interleavings of notifications (valid or garbage), strap drops, links failing with an
error, the strap walking out of range, a Bluetooth stack that errors, new fixes and time passing.
Whatever happens: the source never crashes, samples come out in strictly increasing whole GPS
seconds within the plausible range, every notification is counted exactly once, and the state
is one of the documented ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.bike.heart_rate.protocol import HeartRateMeasurement, encode_heart_rate_measurement
from tracker.bike.heart_rate.source import HeartRateSource
from tracker.model import HeartRateSample

from ..integration.heart_rate_support import FakeRadio, Fix, ManualClock, settle

valid_packets = st.builds(
    lambda flags, bpm, rr: encode_heart_rate_measurement(
        HeartRateMeasurement(
            flags=flags & ~0x08 | 0x10 if rr else flags & ~0x18,
            bpm=bpm if flags & 1 else bpm & 0xFF,
            rr_intervals_1024=tuple(rr),
        )
    ),
    st.integers(0, 0xFF),
    st.integers(0, 300),
    st.lists(st.integers(0, 0xFFFF), max_size=3),
)

ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "packet": st.one_of(valid_packets, st.binary(max_size=8)),
    "advance": st.floats(0.0, 8.0),
    "fix": st.floats(-2.0, 5.0),  # a new fix; GPS time jumps by 1 s plus this
    "drop": st.booleans(),  # with an error, or a clean disconnect
    "in_range": st.sampled_from([True, True, False]),
    "scan_error": st.sampled_from([False, False, True]),
}
# Notifications and time passing are the common case, trouble the rarer one.
KINDS = ["packet"] * 6 + ["advance"] * 3 + ["fix"] * 2 + ["drop", "in_range", "scan_error"]
operations = st.lists(
    st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), ARGUMENTS[kind])),
    min_size=40,
    max_size=120,
)


async def scenario(ops: list[tuple[str, Any]]) -> None:
    clock = ManualClock()
    radio = FakeRadio()
    fix = Fix()
    source = HeartRateSource(radio, "auto", fix, clock=clock, sleep=clock.sleep)
    out: list[HeartRateSample] = []
    delivered = 0

    async def consume() -> None:
        async for sample in source:
            out.append(sample)

    task = asyncio.create_task(consume())
    await settle()
    gps = fix.anchor[0] if fix.anchor else 0.0
    for op, arg in ops:
        link = radio.links[-1] if radio.links else None
        live = link is not None and not link.closed and not link.dropped.is_set()
        if op == "packet" and live:
            assert link is not None
            link.notify(arg)
            delivered += 1
        elif op == "advance":
            await clock.advance(arg)
        elif op == "fix":
            gps += 1.0 + arg
            fix.anchor = (gps, clock.now)
        elif op == "drop" and live:
            assert link is not None
            link.drop(OSError("link failed") if arg else None)
        elif op == "in_range":
            radio.in_range = arg
        elif op == "scan_error":
            radio.scan_error = OSError("adapter busy") if arg else None
        await settle()
        assert not task.done(), "the source must never end or crash with a real strap"
        status = source.status()
        assert status["state"] in ("scanning", "connected", "lost")
    await clock.advance(0.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    stamps = [s.timestamp for s in out]
    assert stamps == sorted(set(stamps))
    assert all(20 <= s.hr <= 250 for s in out)
    counters = source.status()["counters"]
    assert counters["packets"] == delivered
    assert counters["samples"] == len(out) + counters["overflow"]
    assert source.status()["connections"] == len(radio.links)
    assert all(link.closed for link in radio.links)


@settings(max_examples=40)
@given(operations)
def test_the_source_keeps_its_promises_in_any_weather(ops: list[tuple[str, Any]]) -> None:
    asyncio.run(scenario(ops))
