"""The GPS receiver on a serial port (USB, UART, Bluetooth rfcomm, or a test pseudo-terminal).

pyserial opens and configures the port (raw mode, baud rate); the bytes are then read in blocks
with non-blocking ``os.read`` when the event loop says the descriptor is readable, never byte by
byte (pyserial's ``readline()`` costs ~5 µs of CPU per byte: a large share of a Pi Zero core).

* ``device = "auto"``: the first of ``/dev/serial/by-id/*``, ``/dev/ttyACM*``, ``/dev/ttyUSB*``,
  ``/dev/rfcomm*`` that talks NMEA.
* ``baud = "auto"``: 4800, 9600, 38400, 115200 (then the rest) until two checksummed sentences
  arrive; the bytes read while probing are kept and delivered.
* End of a burst: :attr:`SerialSource.quiet_gap_s` is how long the line must be silent after a
  sentence for the receiver's burst to be over: :data:`QUIET_CHARS` character times at the
  connected baud (10 bits each), but not under :data:`QUIET_FLOOR_S` (a USB receiver's nominal
  baud says nothing about its packets, and the event loop's wake-up is not that exact).
* Hot-plug: when the device goes away (read error, end of file, nothing for ``idle_timeout_s``)
  the source logs it once, yields ``b""`` so the decoder drops the half line, and retries with
  exponential backoff; the return is logged once too. It never gives up: a tracker on a bike
  must survive a loose cable.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import os
import select
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from tracker.errors import GpsInputError
from tracker.gps.nmea.framing import Framer
from tracker.logs import get_logger
from tracker.retry import RECONNECT, Backoff, RetryPolicy, Sleep

log = get_logger("gps.serial")


# /dev/gps0 first: the name hardware/99-tracker-gps.rules gives a known receiver.
DEVICE_PATTERNS = (
    "/dev/gps0",
    "/dev/serial/by-id/*",
    "/dev/ttyACM*",
    "/dev/ttyUSB*",
    "/dev/rfcomm*",
)
BAUD_ORDER = (4800, 9600, 38400, 115200, 19200, 57600)
READ_BLOCK = 65536
READ_AHEAD = 8 * READ_BLOCK  # bytes read but not yet taken before reading pauses
QUIET_CHARS = 10
QUIET_FLOOR_S = 0.02


def discover_devices(patterns: Sequence[str] = DEVICE_PATTERNS) -> list[str]:
    """Candidate receiver devices, in the order of ``patterns``; by-id links first (stable)."""
    found: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                found.append(path)
    return found


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in poller.poll(0))


class SerialSource:
    """Async byte chunks from a serial GPS receiver; ``b""`` marks a break in the stream."""

    kind = "bytes"

    def __init__(
        self,
        device: str = "auto",
        baud: int | str = "auto",
        *,
        patterns: Sequence[str] = DEVICE_PATTERNS,
        retry: RetryPolicy = RECONNECT,
        sleep: Sleep = asyncio.sleep,
        idle_timeout_s: float = 10.0,
        probe_timeout_s: float = 2.5,
        serial_factory: Callable[..., Any] | None = None,
        on_retry: Callable[[int], None] | None = None,
    ) -> None:
        self.device = device
        self.baud = baud
        self.patterns = patterns
        self._backoff = Backoff(retry, sleep)
        self.idle_timeout_s = idle_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._serial_factory = serial_factory
        self._on_retry = on_retry  # called with failed_attempts after each failed attempt
        self.present = False
        self.connected_path: str | None = None
        self.connected_baud: int | None = None
        self.connects = 0
        self.disconnects = 0
        self.failed_attempts = 0  # connection attempts that found no receiver
        self._closed = False
        self._reader: _Reader | None = None  # the port being read now
        self._data_hook: DataHook | None = None

    @property
    def name(self) -> str:
        return f"serial:{self.connected_path or self.device}"

    @property
    def quiet_gap_s(self) -> float:
        """Silence after a sentence that ends the receiver's burst (see the module docstring)."""
        baud = self.connected_baud or (self.baud if isinstance(self.baud, int) else BAUD_ORDER[0])
        return max(QUIET_CHARS * 10 / baud, QUIET_FLOOR_S)

    async def chunks(self) -> AsyncIterator[bytes]:
        reported_missing = False
        while not self._closed:
            try:
                port, first = await self._connect()
            except GpsInputError as exc:
                self.failed_attempts += 1
                if self._on_retry is not None:
                    self._on_retry(self.failed_attempts)
                if not reported_missing:
                    log.warning("gps receiver not available, retrying", reason=str(exc))
                    reported_missing = True
                await self._backoff.wait()
                continue
            self._backoff.reset()
            reported_missing = False
            self.present = True
            self.connects += 1
            log.info("gps receiver connected", device=self.connected_path,
                     baud=self.connected_baud)  # fmt: skip
            reason = "closed"
            try:
                if first:
                    yield first
                async with contextlib.aclosing(self._read_blocks(port.fd)) as blocks:
                    async for chunk in blocks:
                        yield chunk
                reason = "end of data (unplugged?)"
            except GpsInputError as exc:
                reason = str(exc)
            finally:
                self.present = False
                with contextlib.suppress(Exception):
                    port.close()
            if self.closed:
                return
            self.disconnects += 1
            log.warning("gps receiver lost, retrying", device=self.connected_path, reason=reason)
            reported_missing = True  # the loss was logged; the retries stay quiet
            yield b""

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def unread_bytes(self) -> int:
        """How many bytes were read from the port ahead of the iterator (see take_unread)."""
        return self._reader.buffered if self._reader is not None else 0

    def set_data_hook(self, hook: DataHook | None) -> None:
        """Offer each block read from the port to ``hook`` first, in the readable callback
        itself (see :class:`_Reader`); not the bytes read while probing the baud rate."""
        self._data_hook = hook
        if self._reader is not None and not self._reader.probing:
            self._reader.on_data = hook

    def fail_reading(self, exc: Exception) -> None:
        """Make the iterator raise ``exc`` (an error of whoever took bytes through the hook
        outside the readable callback, e.g. on a timer)."""
        if self._reader is not None:
            self._reader.fail(exc)

    def take_unread(self) -> bytes:
        """The bytes read from the port but not yet yielded (a stop takes them: see
        :meth:`tracker.gps.stream.FixStream.flush_pending`); they will not be yielded."""
        return self._reader.take() if self._reader is not None else b""

    async def aclose(self) -> None:
        self._closed = True

    # -- connecting -----------------------------------------------------------------------------

    async def _connect(self) -> tuple[Any, bytes]:
        candidates = discover_devices(self.patterns) if self.device == "auto" else [self.device]
        if not candidates:
            raise GpsInputError(f"no serial device matches {', '.join(self.patterns)}")
        problems: list[str] = []
        for path in candidates:
            bauds = BAUD_ORDER if self.baud == "auto" else (int(self.baud),)
            for baud in bauds:
                try:
                    port = self._open(path, baud)
                except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
                    problems.append(f"{path}: {exc}")
                    break
                if len(bauds) == 1 and self.device != "auto":
                    self.connected_path, self.connected_baud = path, baud
                    return port, b""
                try:
                    seen = await self._probe(port.fd)
                except GpsInputError as exc:
                    port.close()
                    problems.append(f"{path}: {exc}")
                    break
                if seen is not None:
                    self.connected_path, self.connected_baud = path, baud
                    return port, seen
                port.close()
                problems.append(f"{path} at {baud} baud: no NMEA")
        raise GpsInputError("; ".join(problems[-3:]))

    def _open(self, path: str, baud: int) -> Any:
        if self._serial_factory is not None:
            port = self._serial_factory(path, baud)
        else:
            import serial

            port = serial.Serial(path, baud, timeout=0)
        flags = fcntl.fcntl(port.fd, fcntl.F_GETFL)
        fcntl.fcntl(port.fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        return port

    async def _probe(self, fd: int) -> bytes | None:
        """Read up to probe_timeout_s; the bytes if two good sentences came, else None."""
        framer = Framer(frozenset())
        seen = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.probe_timeout_s
        async with contextlib.aclosing(self._read_blocks(fd, deadline=deadline)) as blocks:
            async for chunk in blocks:
                seen += chunk
                framer.feed(chunk)
                if framer.stats.sentences >= 2:
                    return bytes(seen)
        return None

    # -- reading --------------------------------------------------------------------------------

    async def _read_blocks(
        self, fd: int, deadline: float | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Blocks of bytes as they arrive. Ends at end of file; raises GpsInputError on errors.

        With ``deadline`` (loop time) it simply stops then (baud probing).
        """
        reader = self._reader = _Reader(asyncio.get_running_loop(), fd)
        reader.probing = deadline is not None
        if not reader.probing:
            reader.on_data = self._data_hook
        try:
            while True:
                data = await reader.next(self.idle_timeout_s, deadline)
                if data is None:
                    return
                yield data
        finally:
            self._reader = None
            reader.close()


# Offered each block read, in the readable callback: True when it took the block (then the
# iterator never sees it). What it raises, the iterator raises.
DataHook = Callable[[bytes], bool]


class _Reader:
    """Reads ``fd`` in the event loop's readable callback itself and hands the blocks over.

    Why not "the callback wakes a task that reads": the descriptor stays readable until that task
    has run, so the loop's next poll calls the callback again and the task wakes once more to an
    empty read; per epoch that is a loop turn, a task step and two system calls for nothing.
    The idle timeout is one timer that, when it fires, looks at when data last came, not a timer
    set and cancelled per block. Reading pauses while more than :data:`READ_AHEAD` bytes wait
    for the consumer, so a stalled consumer still pushes back on the kernel.

    ``on_data``, when set, is offered each block first, right in the callback, while no older
    block waits: the fix stream decodes and records it there when it can, and no task wakes
    for it at all (issue 17). An exception it raises is raised by :meth:`next`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._blocks: list[bytes] = []
        self._buffered = 0
        self._error: GpsInputError | None = None
        self._hook_error: Exception | None = None
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        # Fires at the earliest time the idle timeout (or the deadline) may have passed; data
        # coming meanwhile only moves that time on, so it is re-armed when it fires, not per block.
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._last_data = loop.time()
        self.on_data: DataHook | None = None
        self.probing = False
        self._resume()

    def _resume(self) -> None:
        if not self._reading and not self._eof and self._error is None and not self._hook_error:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_BLOCK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._error = GpsInputError(f"read failed: {exc.strerror or exc}")
            self._pause()
        else:
            if data:
                self._last_data = self._loop.time()
                hook = self.on_data
                if hook is not None and not self._blocks:
                    try:
                        if hook(data):
                            return
                    except Exception as exc:  # the iterator's caller sees it, as without a hook
                        self.fail(exc)
                        return
                self._blocks.append(data)
                self._buffered += len(data)
                if self._buffered > READ_AHEAD:
                    self._pause()
            elif _hung_up(self._fd):
                self._eof = True
                self._pause()
            else:
                # With VMIN=0 a read with nothing queued returns b"" (a stale wake-up); only a
                # hang-up means the device is gone.
                return
        self._wake()

    def fail(self, exc: Exception) -> None:
        self._hook_error = exc
        self._pause()
        self._wake()

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, idle_timeout_s: float, deadline: float | None) -> bytes | None:
        """The bytes read since the last call (waiting for some); None at end of file or at
        ``deadline``; GpsInputError after a read error or ``idle_timeout_s`` without data."""
        loop = self._loop
        while not self._blocks:
            if self._error is not None:
                raise self._error
            if self._hook_error is not None:
                raise self._hook_error
            if self._eof:
                return None
            wake_at = deadline if deadline is not None else self._last_data + idle_timeout_s
            if loop.time() >= wake_at:
                if deadline is not None:
                    return None
                raise GpsInputError(f"no data for {idle_timeout_s:g} s")
            timer = self._timer
            if timer is None or timer.when() > wake_at:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(wake_at, self._on_timer)
            self._waiter = waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self.take()

    @property
    def buffered(self) -> int:
        return self._buffered

    def take(self) -> bytes:
        """The bytes read and not taken yet (maybe none); reading goes on if it had paused."""
        blocks = self._blocks
        data = blocks[0] if len(blocks) == 1 else b"".join(blocks)
        self._blocks = []
        self._buffered = 0
        self._resume()
        return data

    def close(self) -> None:
        self._pause()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()
