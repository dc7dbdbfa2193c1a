"""Heart rate from a Bluetooth LE strap: find it, stay connected, hand on timestamped samples.

Three layers, so that everything but the radio runs in tests and in the demo:

- a **transport** (:class:`HeartRateTransport`) is the only part that touches Bluetooth. It can
  ``scan`` for the configured strap and ``connect`` to it, after which it calls ``on_packet``
  with every raw Heart Rate Measurement (0x2A37) notification. :class:`BleakHeartRateTransport`
  is the real one (bleak + bleak-retry-connector, imported lazily so start-up stays fast and a
  machine without a Bluetooth stack never loads them); :class:`ReplayHeartRateTransport` plays a
  recorded or synthetic series of measurement *packets* for the demo.
- a **source** (:class:`HeartRateSource`) owns the link's life: scan, connect, hold, notice a
  drop (disconnect callback, or silence), back off and reconnect forever. It logs once per
  state change, pushes each packet through the pure
  :class:`~tracker.bike.heart_rate.protocol.HeartRatePipeline`
  (parse, stamp on the GPS clock, thin to one
  per second, count what was skipped) and yields :class:`tracker.model.HeartRateSample` values.
- :func:`open_heart_rate_source` builds the source the configuration asks for, or None when
  heart rate is disabled; :func:`heart_rate_status` is the small dict ``tracker status`` shows.

Timestamps: the caller passes ``gps_time()``, returning ``(gps_unix, monotonic)`` of the latest
fix (``monotonic`` read from :func:`time.monotonic` when that fix arrived), or None before the
first fix. A packet arriving at monotonic ``m`` is stamped ``floor(gps_unix + m - monotonic)``:
the Pi's wall clock is never used. Samples that arrive before any fix are counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tracker.bike.heart_rate.protocol import (
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
    GpsAnchor,
    HeartRatePipeline,
    parse_packet_recording,
    strap_matches,
    synthetic_ride_packets,
)
from tracker.config import HeartRateSettings
from tracker.errors import ConfigError
from tracker.logs import get_logger
from tracker.model import HeartRateSample
from tracker.retry import STRAP_RECONNECT, Backoff, RetryPolicy

log = get_logger("tracker.heart_rate")

# How often a replayed strap looks at the ride clock (wall seconds): 50 looks per second
# keep up with a replay at 20x and cost nothing next to the replay itself.
RIDE_POLL_S = 0.02



class PacketCallback(Protocol):
    """Where a transport delivers each notification. A replayed strap on the ride clock also
    says the ride time the packet belongs to (``ride_time``): a log replayed faster than its
    fixes come (0.5 Hz at 12x) then still gets a sample for every ride-second."""

    def __call__(self, packet: bytes, ride_time: float | None = None) -> None: ...

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
GpsTime = Callable[[], GpsAnchor | None]
HeartRateState = Literal["disabled", "scanning", "connected", "lost", "ended"]

SYNTHETIC_DEVICE = "synthetic"  # [heart_rate] device = "synthetic" or "synthetic:<seed>"
REPLAY_PREFIX = "replay:"  # [heart_rate] device = "replay:/path/to/recording.txt"


@dataclass(frozen=True)
class FoundStrap:
    """A strap seen in a scan. ``handle`` is the Bluetooth stack's own object (a BLEDevice)."""

    address: str
    name: str = ""
    handle: Any = None

    def describe(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


class HeartRateLink(Protocol):
    """A connected strap whose notifications are flowing to ``on_packet``."""

    async def wait_closed(self) -> None:
        """Return when the link has dropped (strap off, out of range, radio trouble)."""

    async def close(self) -> None:
        """Disconnect; never raises."""


class HeartRateTransport(Protocol):
    """The Bluetooth layer, and all of it: everything above is ordinary tested code."""

    async def scan(self, device: str) -> FoundStrap | None:
        """One scan window for ``device`` (address, name or "auto"); None if not seen."""

    async def connect(self, strap: FoundStrap, on_packet: PacketCallback) -> HeartRateLink:
        """Connect and subscribe to 0x2A37; ``on_packet`` gets each notification's bytes."""


class BluetoothUnavailableError(Exception):
    """The machine has no usable Bluetooth stack right now (no adapter, bluetoothd down)."""


class TransportExhausted(Exception):
    """A replay transport has played its whole series: the source ends instead of rescanning."""


# --- the real radio --------------------------------------------------------------------------


class BleakHeartRateTransport:
    """bleak for scanning and notifications, bleak-retry-connector for flaky connects."""

    def __init__(self, *, scan_timeout_s: float = 10.0, connect_attempts: int = 3) -> None:
        self.scan_timeout_s = scan_timeout_s
        self.connect_attempts = connect_attempts

    async def scan(self, device: str) -> FoundStrap | None:
        from bleak import BleakScanner
        from bleak.backends.device import BLEDevice
        from bleak.backends.scanner import AdvertisementData

        def wanted(found: BLEDevice, adv: AdvertisementData) -> bool:
            return strap_matches(
                device, found.address, (adv.local_name, found.name), adv.service_uuids
            )

        try:
            if device == "auto":  # let the OS filter too (macOS needs it, BlueZ saves wake-ups)
                ble = await BleakScanner.find_device_by_filter(
                    wanted, timeout=self.scan_timeout_s, service_uuids=[HEART_RATE_SERVICE_UUID]
                )
            else:
                ble = await BleakScanner.find_device_by_filter(wanted, timeout=self.scan_timeout_s)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            # BlueZ is reached over the D-Bus system socket; bleak lets the bare OSError out.
            raise BluetoothUnavailableError(
                f"no Bluetooth stack: cannot reach BlueZ over D-Bus ({exc}); "
                "is bluetoothd running and is there an adapter?"
            ) from exc
        if ble is None:
            return None
        return FoundStrap(address=ble.address, name=ble.name or "", handle=ble)

    async def connect(self, strap: FoundStrap, on_packet: PacketCallback) -> HeartRateLink:
        from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

        dropped = asyncio.Event()
        client = await establish_connection(
            BleakClientWithServiceCache,
            strap.handle,
            strap.describe(),
            disconnected_callback=lambda _client: dropped.set(),
            max_attempts=self.connect_attempts,
        )

        def notified(_characteristic: Any, data: bytearray) -> None:
            on_packet(bytes(data))

        try:
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, notified)
        except BaseException:
            await _quiet_disconnect(client)
            raise
        return _BleakLink(client, dropped)


class _BleakLink:
    def __init__(self, client: Any, dropped: asyncio.Event) -> None:
        self._client = client
        self._dropped = dropped

    async def wait_closed(self) -> None:
        await self._dropped.wait()

    async def close(self) -> None:
        await _quiet_disconnect(self._client)


async def _quiet_disconnect(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.disconnect()


# --- the demo's strap ------------------------------------------------------------------------


class ReplayHeartRateTransport:
    """Plays (offset seconds, packet bytes) pairs as notifications of a pretend strap.

    Everything above the transport (link handling, parser, GPS time, thinning, counters) runs
    exactly as with a real strap. With ``ride_clock`` (the ride's GPS time now, None before the
    first fix) a packet plays once the ride has gone on as far as its offset: one clock for the
    whole ride, so a GPS log replayed at 20x, or as fast as it is read, still gets one sample per
    ride-second. Without it, ``speed`` divides the gaps between packets (0 = no waiting). When a
    finite series ends, the link closes and the next scan raises :class:`TransportExhausted`.
    """

    def __init__(
        self,
        series: Iterable[tuple[float, bytes]],
        *,
        speed: float = 1.0,
        name: str = "replayed strap",
        sleep: Sleep = asyncio.sleep,
        ride_clock: Callable[[], float | None] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._series: Iterator[tuple[float, bytes]] = iter(series)
        self._speed = speed
        self._name = name
        self._sleep = sleep
        self._exhausted = False
        self._last_offset: float | None = None
        self._ride_clock = ride_clock
        self._ride_start: float | None = None  # ride time at offset 0

    async def scan(self, device: str) -> FoundStrap | None:
        if self._exhausted:
            raise TransportExhausted("the recorded heart-rate series has ended")
        return FoundStrap(address="00:00:00:00:00:00", name=self._name)

    async def connect(self, strap: FoundStrap, on_packet: PacketCallback) -> HeartRateLink:
        if self._exhausted:
            raise TransportExhausted("the recorded heart-rate series has ended")
        link = _ReplayLink()
        link.task = asyncio.create_task(self._play(on_packet, link), name="heart-rate-replay")
        return link

    async def _play(self, on_packet: PacketCallback, link: _ReplayLink) -> None:
        try:
            for offset, packet in self._series:
                if self._ride_clock is not None:
                    await self._until_ride_reaches(offset)
                    assert self._ride_start is not None
                    on_packet(packet, self._ride_start + offset)
                    continue
                gap = 0.0
                if self._last_offset is not None and self._speed > 0:
                    gap = max(0.0, offset - self._last_offset) / self._speed
                if gap > 0:
                    await self._sleep(gap)
                else:
                    await asyncio.sleep(0)  # an endless series at full speed must still yield
                self._last_offset = offset
                on_packet(packet)
            self._exhausted = True
            link.exhausted = True
        finally:
            link.closed.set()


    async def _until_ride_reaches(self, offset: float) -> None:
        """Wait until the ride clock has gone ``offset`` seconds past the first packet."""
        assert self._ride_clock is not None
        while True:
            now = self._ride_clock()
            if now is not None:
                if self._ride_start is None:
                    self._ride_start = now - offset
                if now - self._ride_start >= offset:
                    return
            await self._sleep(RIDE_POLL_S)


class _ReplayLink:
    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.exhausted = False
        self.task: asyncio.Task[None] | None = None

    async def wait_closed(self) -> None:
        await self.closed.wait()
        if self.exhausted:  # the series is over: end the source rather than "reconnect"
            raise TransportExhausted("the recorded heart-rate series has ended")

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# --- the source ------------------------------------------------------------------------------

_END = object()


class HeartRateSource:
    """Async iterator of HeartRateSample from one strap, reconnecting forever; see module doc.

    Iterate it (``async for sample in source``) inside the task that stores samples, one
    iteration at a time; cancelling that task or leaving the loop closes the link, and a later
    iteration reconnects. ``status()`` may be called any time.
    """

    def __init__(
        self,
        transport: HeartRateTransport,
        device: str,
        gps_time: GpsTime,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy = STRAP_RECONNECT,
        silence_timeout_s: float | None = 30.0,
        max_queued: int = 3600,
    ) -> None:
        self._transport = transport
        self._device = device
        self._gps_time = gps_time
        self._clock = clock
        self._sleep = sleep
        self._backoff = Backoff(retry, sleep)
        self._silence_timeout_s = silence_timeout_s
        self._max_queued = max_queued
        self._pipeline = HeartRatePipeline()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._state: HeartRateState = "scanning"
        self._strap: FoundStrap | None = None
        self._ever_connected = False
        self._connections = 0
        self._overflow = 0
        self._last_problem: str | None = None
        self._last_packet_at: float | None = None
        self._malformed_logged = False
        self._logged_state: HeartRateState | None = None
        self._problem_logged = False
        self._iterating = False

    # -- consumer side --

    def __aiter__(self) -> AsyncIterator[HeartRateSample]:
        return self.samples()

    async def samples(self) -> AsyncGenerator[HeartRateSample, None]:
        """The samples, in time order; ends only when a finite replay has been played.

        One iteration at a time. A new one may start after the previous one ended (a
        supervisor restarting the consuming task): it reconnects, and the thinner still
        remembers the last second handed on, so time keeps increasing.
        """
        if self._iterating:
            raise RuntimeError("a HeartRateSource is already being iterated")
        self._iterating = True
        runner = asyncio.create_task(self._run(), name="heart-rate-link")
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, HeartRateSample)
                yield item
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            self._iterating = False
            if self._state == "connected":  # the link was closed with the loop
                self._state = "lost"
                self._last_problem = "nobody is reading the samples"

    def status(self) -> dict[str, Any]:
        """State, strap, last value and time (GPS second), counters: JSON-able, small."""
        last = self._pipeline.last_sample
        counters = self._pipeline.counters.as_dict()
        counters["overflow"] = self._overflow
        age = None
        if self._last_packet_at is not None:
            age = round(max(0.0, self._clock() - self._last_packet_at), 1)
        return {
            "state": self._state,
            "device": self._strap.describe() if self._strap else self._device,
            "last_hr": last.hr if last else None,
            "last_timestamp": last.timestamp if last else None,
            "last_packet_age_s": age,
            "malformed": counters["malformed"],
            "connections": self._connections,
            "last_error": self._last_problem,
            "counters": counters,
        }

    @property
    def state(self) -> HeartRateState:
        return self._state

    # -- link side --

    async def _run(self) -> None:
        try:
            await self._connect_forever()
        except TransportExhausted:
            self._set_state("ended", reason="the replayed series has ended")
            self._queue.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, not a radio problem: let the consumer see it
            self._queue.put_nowait(exc)

    async def _connect_forever(self) -> None:
        while True:
            self._set_state("lost" if self._ever_connected else "scanning")
            link = await self._find_and_connect()
            if link is None:
                await self._backoff.wait()
                continue
            self._backoff.reset()
            self._connections += 1
            self._ever_connected = True
            self._last_packet_at = self._clock()
            self._set_state("connected")
            try:
                reason = await self._hold(link)
            finally:
                await link.close()
            self._last_problem = reason
            self._set_state("lost", reason=reason)
            await self._backoff.wait()

    async def _find_and_connect(self) -> HeartRateLink | None:
        try:
            strap = await self._transport.scan(self._device)
        except TransportExhausted:
            raise
        except Exception as exc:  # no adapter, BlueZ down, no permission: keep trying
            self._problem(f"scan failed: {_describe(exc)}")
            return None
        if strap is None:
            self._problem(f"no strap matching {self._device!r} in range")
            return None
        try:
            link = await self._transport.connect(strap, self._on_packet)
        except TransportExhausted:
            raise
        except Exception as exc:
            self._problem(f"connecting to {strap.describe()} failed: {_describe(exc)}")
            return None
        self._strap = strap
        self._malformed_logged = False
        return link

    async def _hold(self, link: HeartRateLink) -> str:
        """Wait until the link drops or falls silent; say which."""
        closed = asyncio.ensure_future(link.wait_closed())
        try:
            while True:
                if self._silence_timeout_s is None:
                    await asyncio.wait({closed})
                    return _why_closed(closed)
                last = self._last_packet_at if self._last_packet_at is not None else self._clock()
                remaining = self._silence_timeout_s - (self._clock() - last)
                if remaining <= 0:
                    return f"no measurement for {self._silence_timeout_s:g} s"
                timer = asyncio.ensure_future(self._sleep(remaining))
                try:
                    await asyncio.wait({closed, timer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
                if closed.done():
                    return _why_closed(closed)
        finally:
            closed.cancel()

    def _on_packet(self, packet: bytes, ride_time: float | None = None) -> None:
        """Called by the transport for every notification; never raises into the BLE stack."""
        try:
            now = self._clock()
            self._last_packet_at = now
            malformed_before = self._pipeline.counters.malformed
            # A real strap's sample is stamped on the GPS clock at arrival; a replayed one on
            # the ride time it was played for.
            anchor = (ride_time, now) if ride_time is not None else self._gps_time()
            sample = self._pipeline.feed(packet, now, anchor)
            if self._pipeline.counters.malformed > malformed_before and not self._malformed_logged:
                self._malformed_logged = True  # once per connection; the count is in status
                log.warning(
                    "heart_rate_malformed_packet",
                    detail=self._pipeline.last_error,
                    note="skipped; further ones are only counted",
                )
            if sample is None:
                return
            if self._queue.qsize() >= self._max_queued:
                self._overflow += 1
                return
            self._queue.put_nowait(sample)
        except Exception as exc:  # pragma: no cover - the pipeline is total; belt and braces
            log.error("heart_rate_packet_failed", error=_describe(exc))

    def _problem(self, problem: str) -> None:
        """Remember why scanning or connecting failed; log only the first one in each state."""
        self._last_problem = problem
        if not self._problem_logged:
            self._problem_logged = True
            log.warning("heart_rate_not_connected", state=self._state, problem=problem)

    def _set_state(self, state: HeartRateState, **details: Any) -> None:
        """Change state, logging once per change (never once per retry)."""
        self._state = state
        if state == self._logged_state:
            return
        previous, self._logged_state = self._logged_state, state
        self._problem_logged = False
        if state == "connected":
            log.info(
                "heart_rate_connected", strap=self._strap.describe() if self._strap else None
            )
        elif state in ("lost", "ended"):
            log.warning(f"heart_rate_{state}", previous=previous, **details)
        else:
            log.info(f"heart_rate_{state}", device=self._device, previous=previous)


def _why_closed(closed: asyncio.Future[None]) -> str:
    """The reason a finished ``wait_closed`` gives; TransportExhausted ends the source."""
    exc = closed.exception()
    if exc is None:
        return "the strap disconnected"
    if isinstance(exc, TransportExhausted):
        raise exc
    return f"the link failed: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- wiring ----------------------------------------------------------------------------------


def open_heart_rate_source(
    settings: HeartRateSettings,
    gps_time: GpsTime,
    *,
    replay_speed: float = 1.0,
    ride_clock: Callable[[], float | None] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> HeartRateSource | None:
    """The source ``[heart_rate]`` asks for, or None when heart rate is disabled.

    ``device`` is a BLE address, a name, or "auto" (the first strap advertising the Heart Rate
    service); for demos and bench tests also ``"synthetic"`` / ``"synthetic:<seed>"`` (an
    endless generated ride) or ``"replay:<file>"`` (a recorded series, see
    :func:`tracker.bike.heart_rate.protocol.parse_packet_recording`), played on ``ride_clock``
    (the ride's GPS time) when given, else at ``replay_speed``.
    Raises ConfigError when the device string or the recording is unusable.
    """
    if not settings.enabled:
        return None
    device = settings.device.strip()
    if not device:
        raise ConfigError('[heart_rate] device: empty; use "auto", a BLE address or a name')
    transport: HeartRateTransport
    if device == SYNTHETIC_DEVICE or device.startswith(SYNTHETIC_DEVICE + ":"):
        seed_text = device.partition(":")[2] or "1"
        try:
            seed = int(seed_text)
        except ValueError:
            raise ConfigError(
                f"[heart_rate] device: {device!r}: the seed after 'synthetic:' must be a number"
            ) from None
        transport = ReplayHeartRateTransport(
            synthetic_ride_packets(seed),
            speed=replay_speed,
            name="synthetic strap",
            sleep=sleep,
            ride_clock=ride_clock,
        )
    elif device.startswith(REPLAY_PREFIX):
        path = Path(device[len(REPLAY_PREFIX) :]).expanduser()
        try:
            series = parse_packet_recording(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"[heart_rate] device: cannot read {path}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"[heart_rate] device: {path}: {exc}") from None
        transport = ReplayHeartRateTransport(
            series,
            speed=replay_speed,
            name=f"recording {path.name}",
            sleep=sleep,
            ride_clock=ride_clock,
        )
    else:
        transport = BleakHeartRateTransport()
    return HeartRateSource(transport, device, gps_time, clock=clock, sleep=sleep)


def heart_rate_status(source: HeartRateSource | None) -> dict[str, Any]:
    """What ``tracker status`` shows about the strap: ``{"state": "disabled"}`` without one.

    Print it with :func:`tracker.bike.heart_rate.protocol.describe_heart_rate_status`.
    """
    if source is None:
        return {"state": "disabled"}
    return source.status()
