"""`tracker fixes` as a live monitor, and the engine's stream closing epochs as they end.

Real processes and real descriptors: a subprocess whose stdin is a pipe fed one recorded epoch at
a time, a subprocess reading a FakeReceiver's pseudo-terminal like the service does, and
FixStream over a pipe. A fix line must appear before the next epoch is written; Ctrl-C (SIGINT)
ends the monitor with status 130 and no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tracker.gps.fake import FakeReceiver
from tracker.gps.filters import FixFilter
from tracker.gps.nmea.pacing import epochs
from tracker.gps.pipe import PipeSource
from tracker.gps.replay import iter_log_lines, read_fixes
from tracker.gps.serial import SerialSource
from tracker.gps.stream import FixStream
from tracker.gps.tpv import fix_to_tpv
from tracker.model import Fix

LINE_TIMEOUT_S = 10.0  # a safety net only: each line is expected within milliseconds
ONE_HZ = ("gpsd", "haicom-305N.log")


def bursts_of(path: Path) -> list[bytes]:
    """The log's timed epochs, each as the bytes of one receiver burst."""
    return [b"".join(b.lines) for b in epochs(iter_log_lines(path)) if b.timed]


@contextlib.contextmanager
def stream_on_a_pty() -> Iterator[tuple[int, SerialSource, FixStream]]:
    """A FixStream on a SerialSource reading a real pseudo-terminal at 9600 baud (fixed: no
    probing); the test writes the receiver's bytes to the master end it gets."""
    master, slave = os.openpty()
    tty.setraw(slave)
    source = SerialSource(os.ttyname(slave), 9600)
    try:
        yield master, source, FixStream(source, FixFilter(10.0, 50.0))
    finally:
        os.close(master)
        os.close(slave)


async def until_open(source: SerialSource) -> None:
    """Until the port is open: pyserial drops what was queued before (a real descriptor: no
    event to await)."""
    while not source.present:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


def monitor(config_dir: Path, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    config = config_dir / "config.toml"
    config.write_text("")  # the defaults, whatever the machine's own config says
    return subprocess.Popen(
        [sys.executable, "-m", "tracker", "fixes", *args, "--json", "--all"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRACKER_CONFIG": str(config)},
    )


def read_line(proc: subprocess.Popen[bytes], timeout: float = LINE_TIMEOUT_S) -> bytes:
    """One stdout line, read without blocking past ``timeout`` (b"" if none came)."""
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return b""
        byte = os.read(fd, 1)
        if not byte:
            return b""
        line += byte
    return line


def interrupt(proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=LINE_TIMEOUT_S)
    return proc.returncode, err


def test_stdin_prints_each_fix_before_the_next_epoch_is_written(tmp_path: Path) -> None:
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    bursts = [b for b in epochs(iter_log_lines(path)) if b.timed][:8]
    proc = monitor(tmp_path, "-", stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for index, burst in enumerate(bursts):
            proc.stdin.write(b"".join(burst.lines))
            proc.stdin.flush()
            line = read_line(proc)
            assert line, f"no fix line for epoch {index} before the next epoch"
            assert json.loads(line)["time"] == fix_to_tpv(reference[index])["time"]
        status, err = interrupt(proc)
    finally:
        proc.kill()
        proc.wait()
    assert status == 130
    assert b"Traceback" not in err
    assert b"8 epochs" in err  # the summary, as at the end of a file


def test_serial_device_streams_like_the_service(tmp_path: Path) -> None:
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    with FakeReceiver(path, link=tmp_path / "gps0", rate_hz=4.0) as receiver:
        proc = monitor(tmp_path, str(receiver.path))
        try:
            written_when_read = []
            for index in range(6):
                line = read_line(proc)
                assert line, f"no fix line for epoch {index}"
                written_when_read.append(receiver.epochs_written)
                assert json.loads(line)["time"] == fix_to_tpv(reference[index])["time"]
            status, err = interrupt(proc)
        finally:
            proc.kill()
            proc.wait()
    # Fix i was printed before epoch i + 2 was written (the first epoch is index 0).
    assert all(written <= i + 1 for i, written in enumerate(written_when_read)), written_when_read
    assert status == 130
    assert b"Traceback" not in err


async def test_fix_stream_closes_epochs_on_a_quiet_line_and_flushes_at_a_stop() -> None:
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    offline = FixFilter(10.0, 50.0)
    bursts = bursts_of(path)
    read_end, write_end = os.pipe()
    stream = FixStream(PipeSource(read_end), FixFilter(10.0, 50.0))
    verdicts = stream.verdicts()
    try:
        async with asyncio.timeout(LINE_TIMEOUT_S):
            for index in range(6):
                os.write(write_end, bursts[index])
                fix, reason = await anext(verdicts)
                assert fix == reference[index]
                assert reason == offline.accept(reference[index])
            # The first sentence of an epoch, then at once the stop: the line has not gone
            # quiet, the epoch is still being assembled; the stop closes it with its fix.
            half = bursts[6][: bursts[6].index(b"\n") + 1]
            os.write(write_end, half)
            reading = asyncio.ensure_future(anext(verdicts))
            while not stream.decoder.pending:  # noqa: ASYNC110  # read and decoded (a pipe)
                await asyncio.sleep(0.001)
            flushed = stream.flush_pending()
            assert stream.epochs == 7
            assert stream.last_epoch is not None
            assert stream.last_epoch.unix == reference[6].unix
            assert len(flushed) == (offline.accept(stream.last_epoch) is None)
            # The iterator goes on with the next epoch; the flushed one is not repeated.
            os.write(write_end, bursts[7])
            fix, _ = await reading
            assert fix == reference[7]
    finally:
        await verdicts.aclose()
        os.close(write_end)
        os.close(read_end)


async def test_a_stop_takes_the_bytes_the_serial_reader_read_ahead() -> None:
    """A serial port is read in the loop's readable callback, ahead of the iterator: bytes that
    reached the tracker but were not decoded yet when the stop came are in the stopped ride."""
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    offline = FixFilter(10.0, 50.0)
    bursts = bursts_of(path)
    with stream_on_a_pty() as (master, source, stream):
        verdicts = stream.verdicts()
        try:
            async with asyncio.timeout(LINE_TIMEOUT_S):
                first = asyncio.ensure_future(anext(verdicts))
                await until_open(source)
                for index in range(6):
                    os.write(master, bursts[index])
                    fix, _ = await (first if index == 0 else anext(verdicts))
                    assert fix == reference[index]
                # The iterator is not asked for more; the first sentence of the next epoch comes
                # and the reader takes it off the port (a real descriptor: no event to await).
                os.write(master, bursts[6][: bursts[6].index(b"\n") + 1])
                while not source.unread_bytes:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                assert not stream.decoder.pending  # read, not decoded
                flushed = stream.flush_pending()
                assert source.unread_bytes == 0
                assert stream.epochs == 7
                assert stream.last_epoch is not None
                assert stream.last_epoch.unix == reference[6].unix
                assert len(flushed) == (offline.accept(stream.last_epoch) is None)
                # The iterator goes on with the next epoch; the flushed one is not repeated.
                os.write(master, bursts[7])
                fix, _ = await anext(verdicts)
                assert fix == reference[7]
        finally:
            await verdicts.aclose()


async def test_fixes_go_straight_from_the_readable_callback_when_the_engine_can_take_them() -> None:
    """FixStream.deliver_to: with a serial source, each accepted fix goes to ``take`` in the
    port's readable callback (no task step; the quiet line timed by a loop timer while the
    receiver's cycle end is being learned), except while ``ready()`` is false (an autostart
    due): then the iterator yields them. Every accepted fix comes out once, in order."""
    path = shared_file(*ONE_HZ)
    reference, _ = read_fixes(path)
    offline = FixFilter(10.0, 50.0)
    accepted = [offline.accept(fix) is None for fix in reference]
    bursts = bursts_of(path)
    with stream_on_a_pty() as (master, source, stream):
        taken: list[Fix] = []
        yielded: list[Fix] = []
        ready = [True]
        stream.deliver_to(taken.append, lambda: ready[0])

        async def iterate() -> None:
            async for fix in stream:
                yielded.append(fix)

        reading = asyncio.create_task(iterate())
        try:
            async with asyncio.timeout(LINE_TIMEOUT_S):
                await until_open(source)
                for index in range(40):
                    ready[0] = not 20 <= index < 30
                    os.write(master, bursts[index])
                    # Until the epoch is closed and its fix is out (a real pty: no event to await);
                    # a yielded fix is appended in the task step that then waits for bytes again.
                    done = sum(accepted[: index + 1])
                    while stream.epochs < index + 1 or len(taken) + len(yielded) < done:  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
            iterator_took = range(20, 30)
            assert taken == [
                f for i, f in enumerate(reference[:40]) if accepted[i] and i not in iterator_took
            ]
            assert yielded == [
                f for i, f in enumerate(reference[:40]) if accepted[i] and i in iterator_took
            ]
            assert len(taken) > len(yielded) > 0
            assert stream.decoder.stats.closed_on_quiet > 0  # the loop timer closed those
            assert stream.decoder.stats.closed_at_cycle_end > 0
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


async def test_an_error_in_the_taker_is_raised_by_the_iterator() -> None:
    path = shared_file(*ONE_HZ)
    bursts = bursts_of(path)
    with stream_on_a_pty() as (master, source, stream):

        def broken(fix: Fix) -> None:
            raise RuntimeError(f"cannot take {fix.unix}")

        stream.deliver_to(broken)

        async def iterate() -> None:
            async for _ in stream:
                pass

        reading = asyncio.create_task(iterate())
        try:
            async with asyncio.timeout(LINE_TIMEOUT_S):
                await until_open(source)
                for burst in bursts[:30]:
                    os.write(master, burst)
                    await asyncio.sleep(0.01)
                    if reading.done():
                        break
                with pytest.raises(RuntimeError, match="cannot take"):
                    await reading
            assert not source.present  # the iterator ended: the port was closed
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
