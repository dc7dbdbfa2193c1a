"""Issue 14, through a real pty: one checksum-valid epoch an hour ahead in a real recording.

The u-blox M8 log of a ride in Brittany is played through :class:`FakeReceiver` (a real
pseudo-terminal) into :func:`open_fix_stream`, with one RMC sentence copied from the 50th epoch,
its time moved an hour ahead and its checksum recomputed. The bad epoch is dropped, counted and
logged once; every good fix still comes out, in increasing time, so nothing downstream takes the
good fixes after it for stale ones.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
from datetime import UTC, datetime

import structlog

from tests.conftest import shared_file
from tracker.config import FilterSettings, GpsSettings
from tracker.gps.fake import FakeReceiver
from tracker.gps.replay import iter_log_lines, read_fixes
from tracker.gps.serial import SerialSource
from tracker.gps.stream import open_fix_stream
from tracker.model import Fix
from tracker.retry import RetryPolicy

SAFETY_TIMEOUT_S = 30
FAST_RECONNECT = RetryPolicy(initial_s=0.02, max_s=0.2, jitter=0)
GOOD_EPOCHS = 100
BAD_AFTER = 50


def checksummed(body: bytes) -> bytes:
    return b"$" + body + b"*%02X\r\n" % functools.reduce(operator.xor, body, 0)


def an_hour_ahead(rmc_line: bytes) -> bytes:
    body = rmc_line.strip()[1:].split(b"*")[0]
    fields = body.split(b",")
    hh = int(fields[1][:2])
    assert hh < 23  # the ride is in the afternoon: no date change to make
    fields[1] = b"%02d" % (hh + 1) + fields[1][2:]
    return checksummed(b",".join(fields))


def recording_with_one_bad_epoch() -> tuple[list[bytes], list[Fix]]:
    """The first GOOD_EPOCHS epochs of the log, one bad epoch injected after BAD_AFTER."""
    path = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    lines: list[bytes] = []
    previous_rmc = b""
    rmc_seen = 0
    for line in iter_log_lines(path):
        if line.startswith(b"$GNRMC"):
            rmc_seen += 1
            if rmc_seen == BAD_AFTER + 1:
                lines.append(an_hour_ahead(previous_rmc))
            if rmc_seen > GOOD_EPOCHS:
                break
            previous_rmc = line
        lines.append(line)
    good, _ = read_fixes(path)
    return lines, good[:GOOD_EPOCHS]


async def test_one_epoch_an_hour_ahead_through_a_pty() -> None:
    lines, good = recording_with_one_bad_epoch()
    assert len(good) == GOOD_EPOCHS
    # max_gap_s: the receiver's own pacing would otherwise sit out the bad hour (72 s at 50x).
    receiver = FakeReceiver(lines, speed=50.0, max_gap_s=1.0)
    with structlog.testing.capture_logs() as logs, receiver:
        source = SerialSource(str(receiver.path), "auto", retry=FAST_RECONNECT)
        stream = open_fix_stream(GpsSettings(device=str(receiver.path)), FilterSettings(),
                                 source=source, rollover_floor=None)  # fmt: skip
        accepted: list[Fix] = []
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            async for fix in stream:
                accepted.append(fix)
                if fix == good[-2]:  # the last epoch stays open until a next one
                    break
        status = stream.status()
        await stream.aclose()
    assert accepted == good[:-1]  # 99 of the 99 good epochs read so far, in order
    assert all(b.unix > a.unix for a, b in itertools.pairwise(accepted))
    assert status.filters["time"] == 1
    assert status.filters["accepted"] == GOOD_EPOCHS - 1
    assert status.filters["reanchored"] == 0
    assert status.decoder["epochs"] == GOOD_EPOCHS  # 99 good + the bad one
    dropped = [e for e in logs if e["event"] == "implausible fix time dropped"]
    assert len(dropped) == 1
    assert dropped[0]["log_level"] == "warning"
    assert dropped[0]["last_fix_time"] == good[BAD_AFTER - 1].time.isoformat()
    bad_time = datetime.fromtimestamp(good[BAD_AFTER - 1].unix + 3600, UTC)
    assert dropped[0]["fix_time"] == bad_time.isoformat()
