"""A real pseudo-terminal between the fake receiver and the serial source.

The recordings are played much faster than real time (their own pace × speed), so the 1 Hz
and 10 Hz receivers each take well under two seconds. The fixes read through the pty must be
exactly those the same log gives when decoded from the file, and after an unplug/replug every
epoch written after the device came back must arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import structlog

from tests.conftest import shared_file
from tracker.config import FilterSettings, GpsSettings
from tracker.gps.fake import FakeReceiver
from tracker.gps.filters import FixFilter
from tracker.gps.nmea import FixDecoder
from tracker.gps.replay import read_fixes
from tracker.gps.serial import SerialSource, discover_devices
from tracker.gps.stream import open_fix_stream
from tracker.model import Fix
from tracker.retry import RetryPolicy

FAST_RECONNECT = RetryPolicy(initial_s=0.02, max_s=0.2, jitter=0)

SAFETY_TIMEOUT_S = 30  # only a safety net: the tests end on events, never on a timer

ONE_HZ = ("gpsd", "haicom-305N.log")  # walking, 1 Hz, 74 epochs
TEN_HZ = ("gpsd", "nmea-rtk.log")  # RTK receiver, 10 Hz, 122 epochs


def source_for(receiver: FakeReceiver, **kwargs: object) -> SerialSource:
    return SerialSource(str(receiver.path), "auto", retry=FAST_RECONNECT, **kwargs)  # type: ignore[arg-type]  # fmt: skip


async def read_through_pty(
    receiver: FakeReceiver, source: SerialSource, reference: list[Fix], unplug_after: int | None
) -> list[Fix]:
    """Decode until the whole log has been read; unplug once after ``unplug_after`` epochs."""
    decoder = FixDecoder()
    decoded: list[Fix] = []
    unplugged = False
    read_since_connect = 0
    async with asyncio.timeout(SAFETY_TIMEOUT_S):
        chunks = source.chunks()
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                read_since_connect += len(chunk)
                if chunk:
                    decoded += decoder.feed(chunk)
                else:  # the device went away: the half-read epoch is closed
                    read_since_connect = 0
                    decoded += decoder.resync()
                    if receiver.done.is_set():
                        break
                    if unplugged and not receiver.plugged:
                        receiver.replug()
                if unplug_after is not None and not unplugged and len(decoded) >= unplug_after:
                    unplugged = True
                    receiver.unplug()
                # All written and all read (the last epoch stays open until the next one or a
                # break): pull the plug so the source reports the break and we flush it.
                if (
                    receiver.done.is_set()
                    and receiver.plugged
                    and read_since_connect == receiver.bytes_since_plug
                ):
                    receiver.unplug()
    return decoded


@pytest.mark.parametrize(("recording", "speed"), [(ONE_HZ, 50.0), (TEN_HZ, 10.0)])
async def test_pty_gives_the_same_fixes_as_the_file(recording: tuple[str, str], speed: float
                                                    ) -> None:  # fmt: skip
    path = shared_file(*recording)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, speed=speed, max_gap_s=1.0) as receiver:
        assert receiver.total_epochs == len(reference)
        decoded = await read_through_pty(receiver, source_for(receiver), reference, None)
    assert decoded == reference


@pytest.mark.parametrize(("recording", "speed"), [(ONE_HZ, 50.0), (TEN_HZ, 10.0)])
async def test_unplug_and_replug_mid_stream(recording: tuple[str, str], speed: float) -> None:
    path = shared_file(*recording)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, speed=speed, max_gap_s=1.0) as receiver:
        source = source_for(receiver)
        decoded = await read_through_pty(receiver, source, reference, unplug_after=20)
        after = [index for plug, index in receiver.written if plug == 2]
    assert source.connects == 2
    assert source.disconnects >= 1
    assert after, "nothing was written after the replug"
    # Every epoch written after the receiver came back arrives, exactly as in the file.
    assert decoded[-len(after) :] == [reference[i] for i in after]
    # Before the unplug too. What was still in the pty when it was pulled is lost (as with a
    # real cable), and the epoch being read then may come out cut short: all of that lies
    # strictly before the first epoch written after the replug.
    assert decoded[:20] == reference[:20]
    middle = decoded[20 : len(decoded) - len(after)]
    first_after = reference[after[0]].unix
    assert all(fix.unix < first_after for fix in middle)
    assert [f.unix for f in middle] == sorted(f.unix for f in middle)


async def test_unplug_is_logged_once_while_absent() -> None:
    path = shared_file(*ONE_HZ)

    with structlog.testing.capture_logs() as logs, FakeReceiver(path, speed=50.0) as receiver:

        def replug_after_retries(failed_attempts: int) -> None:
            if failed_attempts == 3:  # the device stayed away for several retries
                receiver.replug()

        source = source_for(receiver, on_retry=replug_after_retries)
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            chunks = source.chunks()
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    if chunk and source.connects == 1 and receiver.plugged:
                        receiver.unplug()
                    elif chunk and source.connects == 2:
                        break
    events = [entry["event"] for entry in logs]
    assert events.count("gps receiver lost, retrying") == 1
    assert events.count("gps receiver not available, retrying") == 0  # retries stay quiet
    assert events.count("gps receiver connected") == 2
    assert source.failed_attempts >= 3


async def test_open_fix_stream_over_pty_with_status() -> None:
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, speed=50.0) as receiver:
        source = source_for(receiver)
        # An old recording through a live-receiver path: keep its 2007 dates (the default
        # floor for live receivers would move them 1024 weeks forward).
        stream = open_fix_stream(GpsSettings(device=str(receiver.path)), FilterSettings(),
                                 source=source, ring_capacity=10, rollover_floor=None)  # fmt: skip
        assert not stream.receiver_present
        accepted: list[Fix] = []
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            async for fix in stream:
                accepted.append(fix)
                assert stream.receiver_present
                assert stream.has_fix
                if fix == reference[-2]:
                    break
        status = stream.status()
        await stream.aclose()
    settings = FilterSettings()
    offline = FixFilter(settings.max_hdop, settings.max_speed_mps)
    assert accepted == [f for f in reference[:-1] if offline.accept(f) is None]
    assert status.last_fix == reference[-2]
    assert status.decoder["epochs"] == len(reference) - 1
    assert status.filters == offline.as_dict()
    assert status.filters["no_fix"] == 6  # haicom-305N starts with 6 void epochs
    assert status.filters["hdop"] > 0
    assert status.recent == 10
    assert status.recent_dropped == len(accepted) - 10
    as_dict = status.as_dict()
    assert as_dict["receiver_present"] is True
    assert as_dict["last_fix"]["class"] == "TPV"


async def test_device_and_baud_auto_discovery(tmp_path: Path) -> None:
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, link=tmp_path / "ttyUSB7", speed=50.0) as receiver:
        (tmp_path / "ttyUSB0").write_text("not a device")  # a candidate that fails to open
        patterns = (str(tmp_path / "ttyACM*"), str(tmp_path / "ttyUSB*"))
        assert discover_devices(patterns) == [str(tmp_path / "ttyUSB0"), str(receiver.path)]
        source = SerialSource("auto", "auto", patterns=patterns, retry=FAST_RECONNECT)
        decoder = FixDecoder()
        decoded: list[Fix] = []
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            chunks = source.chunks()
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    decoded += decoder.feed(chunk)
                    if len(decoded) >= 10:
                        break
    assert source.connected_path == str(receiver.path)
    assert source.connected_baud == 4800  # a pty takes the first rate tried
    assert decoded == reference[: len(decoded)]


async def test_fast_mode_paces_by_the_reader() -> None:
    # speed 0: as fast as the reader takes them; the receiver reports its GPS-time ratio.
    path = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    with FakeReceiver(path, speed=0) as receiver:
        source = source_for(receiver)
        decoder = FixDecoder()
        count = 0
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            chunks = source.chunks()
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    count += len(decoder.feed(chunk))
                    if count >= 1000:
                        break
        # The receiver reports how much GPS time it got through per wall-clock second (the
        # figure is machine-dependent, so only its presence and consistency are asserted).
        assert receiver.gps_seconds_written >= 1000 - 1  # 1 Hz track: ≥ 1000 s of ride
        assert receiver.gps_ratio > 0
    assert decoder.stats.bad_checksum == 0


async def test_fixed_rate_mode() -> None:
    # rate_hz ignores the log's own times: 100 epochs per second of a 1 Hz walk.
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, rate_hz=100.0) as receiver:
        decoded = await read_through_pty(receiver, source_for(receiver), reference, None)
        assert receiver.epochs_written == receiver.total_epochs == len(reference)
        assert receiver.sentences_written == 325  # every $-line of the log, headers excluded
    assert decoded == reference
