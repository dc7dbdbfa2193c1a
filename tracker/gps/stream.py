"""One GPS input for the engine, whatever the source: accepted fixes plus live status.

``open_fix_stream(settings.gps, settings.filters)`` picks the source (serial, replay, gpsd),
runs its bytes through :class:`~tracker.gps.nmea.FixDecoder` and
:class:`~tracker.gps.filters.FixFilter`, keeps the recent accepted fixes in a
:class:`~tracker.gps.ring.RingBuffer`, and is an async iterator of accepted fixes. The
engine, the LEDs and ``tracker status`` read its status while it runs.

A fix leaves as soon as its epoch is complete: the decoder closes an epoch on the receiver's
learned last sentence of a cycle or when the next epoch begins; this adapter adds the third
rule, which needs a clock: when no byte came for the source's ``quiet_gap_s`` (a few character
times at its baud, measured on the loop's monotonic clock) after a whole sentence, the burst is
over. A break (unplug), the end of the source and :meth:`FixStream.flush_pending` (a stop)
close the pending epoch too, so no fix that reached the tracker stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from tracker.config import FilterSettings, GpsSettings
from tracker.errors import ConfigError
from tracker.gps.filters import Clock, FixFilter
from tracker.gps.nmea import FixDecoder
from tracker.gps.ring import RingBuffer
from tracker.gps.tpv import fix_to_tpv
from tracker.logs import get_logger
from tracker.model import Fix, FixMode

log = get_logger("gps.stream")

# A live receiver reporting a date before this lost count of GPS weeks (the 10-bit week
# number rollover): its date is moved 1024 weeks forward. Recordings are not corrected.
LIVE_ROLLOVER_FLOOR = date(2025, 1, 1)
USE_DEFAULT: Any = object()
# After a quiet close that proved too early (a sentence of the epoch came after it), the gap
# is doubled, up to this many times the source's own.
MAX_QUIET_SCALE = 64.0


class ByteSource(Protocol):
    """A source of raw receiver bytes; ``b""`` marks a break (device lost).

    ``quiet_gap_s``: how long the line must stay silent after a sentence for the burst to be
    over (None: the bytes are not live, e.g. a file read as fast as possible).
    """

    kind: str
    present: bool

    @property
    def quiet_gap_s(self) -> float | None: ...

    @property
    def name(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class BufferingSource(ByteSource, Protocol):
    """A source that reads in the loop's readable callback, ahead of its iterator (the serial
    port). What it holds is given to a stop (:meth:`FixStream.flush_pending`) instead of being
    yielded; each block is first offered to a hook, which may take it right there
    (:meth:`FixStream.deliver_to`); an error of that taking, reported through
    ``fail_reading``, is raised by the iterator. FixStream looks these up by name: a source
    without them is simply iterated."""

    def take_unread(self) -> bytes: ...

    def set_data_hook(self, hook: Callable[[bytes], bool] | None) -> None: ...

    def fail_reading(self, exc: Exception) -> None: ...


def _always() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class GpsStatus:
    """A snapshot for the LEDs and ``tracker status`` (``as_dict`` is JSON-able)."""

    source: str
    receiver_present: bool
    has_fix: bool
    last_fix: Fix | None
    last_epoch: Fix | None
    decoder: dict[str, int]
    filters: dict[str, int]
    recent: int
    recent_dropped: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "receiver_present": self.receiver_present,
            "has_fix": self.has_fix,
            "last_fix": fix_to_tpv(self.last_fix) if self.last_fix else None,
            "decoder": self.decoder,
            "filters": self.filters,
            "recent_fixes": self.recent,
            "recent_dropped": self.recent_dropped,
        }


class FixStream:
    """Async iterator of accepted fixes from one source, with live counters.

    Iterate it once (``async for fix in stream``); it ends when a finite source (replay) ends,
    never for a serial receiver or gpsd (they reconnect). Status attributes are safe to read
    from other tasks at any time.
    """

    def __init__(
        self,
        source: Any,
        fix_filter: FixFilter,
        *,
        decoder: FixDecoder | None = None,
        ring_capacity: int = 600,
    ) -> None:
        self.source = source
        self.filter = fix_filter
        self.decoder = decoder if decoder is not None else FixDecoder()
        self.recent: RingBuffer[Fix] = RingBuffer(ring_capacity)
        self.last_epoch: Fix | None = None  # the last epoch, accepted or not
        self.epochs = 0
        self._started = False
        self._quiet_scale = 1.0
        # The source's next chunk, read by a task while a quiet line is being timed (a timeout
        # must not cancel the source's iterator); None otherwise, and once taken.
        self._next_chunk: asyncio.Task[bytes | None] | None = None
        self._arrived = 0.0  # when the last chunk came (loop clock)
        # deliver_to: accepted fixes taken straight from the source's readable callback.
        self._take: Callable[[Fix], None] | None = None
        self._take_ready: Callable[[], bool] = _always
        self._parked = False  # the iterator waits for the source's next chunk, nothing else
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._late_after_quiet = 0
        # Called when receiver_present or has_fix changed (the engine's LEDs look again then).
        self.on_status_change: Callable[[], None] | None = None
        self._reported: tuple[bool, bool] | None = None

    # -- status ------------------------------------------------------------------------------

    @property
    def receiver_present(self) -> bool:
        return bool(self.source.present)

    @property
    def has_fix(self) -> bool:
        epoch = self.last_epoch
        return self.receiver_present and epoch is not None and epoch.mode >= FixMode.FIX_2D

    @property
    def last_fix(self) -> Fix | None:
        return self.recent.latest()

    def status(self) -> GpsStatus:
        decoder = self.decoder.stats.as_dict()
        if self.source.kind == "fixes":
            decoder = {"reports": self.source.sentences, "bad_reports": self.source.bad_reports,
                       "epochs": self.epochs}  # fmt: skip
        return GpsStatus(
            source=self.source.name,
            receiver_present=self.receiver_present,
            has_fix=self.has_fix,
            last_fix=self.last_fix,
            last_epoch=self.last_epoch,
            decoder=decoder,
            filters=self.filter.as_dict(),
            recent=len(self.recent),
            recent_dropped=self.recent.dropped,
        )

    # -- iteration ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Fix]:
        if self._started:
            raise RuntimeError("a FixStream can be iterated only once")
        self._started = True
        return self._run()

    async def _run(self) -> AsyncIterator[Fix]:
        gen = self.verdicts()
        async with contextlib.aclosing(gen):
            async for fix, reason in gen:
                if reason is None:
                    yield fix

    async def verdicts(self) -> AsyncGenerator[tuple[Fix, str | None], None]:
        """Every epoch as it completes with the filter's verdict (None = accepted).

        What ``tracker fixes --all`` prints; iterating the stream itself yields the accepted
        fixes of the same sequence. Use one or the other, once.
        """
        if self.source.kind == "fixes":
            gen = self.source.fixes()
            async with contextlib.aclosing(gen):
                async for item in gen:
                    for verdict in self._judge([item] if item is not None else []):
                        yield verdict
            return
        batches = self._epochs()
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for verdict in self._judge(batch):
                    yield verdict

    def deliver_to(self, take: Callable[[Fix], None], ready: Callable[[], bool] = _always) -> None:
        """Hand accepted fixes to ``take`` right in the source's readable callback, when the
        source offers its bytes there (:meth:`SerialSource.set_data_hook`), the iterator is
        waiting for bytes (everything yielded before is done with) and ``ready()`` (the
        engine: no autostart due, which needs a task). Such fixes are not yielded; the rest
        are, in order. Issue 17: at 1 epoch/s a fix then costs one wake-up and no task step;
        the epoch's quiet line is timed by a loop timer meanwhile."""
        self._take = take
        self._take_ready = ready

    def _pushed(self, chunk: bytes) -> bool:
        """The source's readable callback offers ``chunk``: decode, judge and deliver it here
        when :meth:`deliver_to` allows, else leave it to the iterator (False)."""
        take = self._take
        if take is None or not self._parked or not self._take_ready():
            return False
        loop = asyncio.get_running_loop()
        self._deliver(take, self._received(chunk, loop.time()))
        self._cancel_quiet_timer()
        gap = self._quiet_gap() if self.decoder.pending else None
        if gap is not None:
            self._quiet_timer = loop.call_at(self._arrived + gap, self._quiet_fired)
        return True

    def _quiet_fired(self) -> None:
        """The line went quiet after a delivered chunk: close its epoch and deliver it (even
        when ``ready()`` turned false meanwhile: an autostart is then one epoch later)."""
        self._quiet_timer = None
        take = self._take
        if take is None or not self._parked:
            return  # the iterator times the gap itself now
        try:
            self._deliver(take, self.decoder.quiet())
        except Exception as exc:  # raised by the iterator, as an error in ``take`` would be
            fail = getattr(self.source, "fail_reading", None)
            if fail is None:
                raise
            fail(exc)

    def _deliver(self, take: Callable[[Fix], None], epochs: list[Fix]) -> None:
        for fix, reason in self._judge(epochs):
            if reason is None:
                take(fix)

    def _cancel_quiet_timer(self) -> None:
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None

    def flush_pending(self) -> list[Fix]:
        """A stop: close the epoch being assembled now; the accepted fixes it gives (0 or 1).

        Every sentence that reached the tracker before the stop is in it: the bytes a source
        read ahead of its iterator too (see :class:`BufferingSource`). The fixes are also
        counted and kept in :attr:`recent` like any other; the iterator will not yield them.
        Safe to call from another task while the stream is being iterated (the decoder is
        synchronous, so it is never mid-sentence when another task runs).
        """
        if self.source.kind == "fixes":
            return []  # gpsd reports whole epochs itself: nothing is pending here
        epochs: list[Fix] = []
        pending = self._next_chunk
        if pending is not None and pending.done() and not pending.cancelled():
            chunk = pending.result() if pending.exception() is None else None
            if chunk is not None:  # (an error or the end is left for the iterator)
                self._next_chunk = None
                epochs += self._decode(chunk)
        take_unread = getattr(self.source, "take_unread", None)
        if take_unread is not None:
            unread = take_unread()
            if unread:
                epochs += self.decoder.feed(unread)
        epochs += self.decoder.end_epoch()
        self._cancel_quiet_timer()
        return [fix for fix, reason in self._judge(epochs) if reason is None]

    def _received(self, chunk: bytes, now: float) -> list[Fix]:
        """A chunk that came at ``now`` (loop clock), decoded, with what it says of the quiet
        gap and the receiver's status noted: the epochs it completed."""
        self._arrived = now
        epochs = self._decode(chunk)
        self._note_late()
        self._note_status()
        return epochs

    def _decode(self, chunk: bytes) -> list[Fix]:
        """A chunk through the decoder (``b""``: the device broke off)."""
        return self.decoder.feed(chunk) if chunk else self.decoder.resync()

    async def _epochs(self) -> AsyncGenerator[list[Fix], None]:
        """Decoded epochs, in batches, each as soon as the decoder or the quiet line closes it.

        The source's iterator is awaited right here: a chunk is decoded in the loop turn that
        brought it, with no reading task and queue between (issue 17: one task step per epoch
        instead of two, none while :meth:`deliver_to` takes the chunks in the source's
        callback). Only while an epoch waits for its quiet line does a task read the next
        chunk, so that the gap's timeout cannot cancel the source's iterator.
        """
        decoder = self.decoder
        loop = asyncio.get_running_loop()
        chunks = self.source.chunks()
        set_hook = getattr(self.source, "set_data_hook", None)
        if set_hook is not None and self._take is not None:
            set_hook(self._pushed)
        async with contextlib.aclosing(chunks):
            try:
                self._arrived = loop.time()
                while True:
                    gap = self._quiet_gap() if decoder.pending else None
                    if gap is None and self._next_chunk is None:
                        self._parked = True  # chunks may be delivered from here (_pushed)
                        try:
                            chunk = await _next_of(chunks)
                        finally:
                            self._parked = False
                            self._cancel_quiet_timer()
                    else:
                        pending = self._next_chunk
                        if pending is None:
                            pending = self._next_chunk = asyncio.ensure_future(_next_of(chunks))
                        if gap is not None:
                            wait = max(self._arrived + gap - loop.time(), 0.0)
                            await asyncio.wait((pending,), timeout=wait)
                            if not pending.done():
                                batch = decoder.quiet()
                                if batch:
                                    yield batch
                                if not decoder.pending:
                                    continue
                                await asyncio.wait((pending,))  # stalled mid-sentence
                        else:
                            await asyncio.wait((pending,))
                        if self._next_chunk is not pending:
                            continue  # a stop took it (flush_pending)
                        self._next_chunk = None
                        chunk = pending.result()
                    if chunk is None:
                        break
                    batch = self._received(chunk, loop.time())
                    if batch:
                        yield batch
                batch = decoder.flush()
                if batch:
                    yield batch
            finally:
                if set_hook is not None:
                    set_hook(None)
                pending, self._next_chunk = self._next_chunk, None
                if pending is not None:  # before the iterator is closed: it may be running
                    pending.cancel()
                    await asyncio.wait((pending,))  # its own cancellation is not ours to raise

    def _quiet_gap(self) -> float | None:
        gap: float | None = getattr(self.source, "quiet_gap_s", None)
        return None if gap is None else gap * self._quiet_scale

    def _note_late(self) -> None:
        """A sentence came after a quiet close of its epoch: that gap was too short here."""
        late = self.decoder.stats.late_after_quiet
        if late > self._late_after_quiet:
            self._late_after_quiet = late
            self._quiet_scale = min(self._quiet_scale * 2, MAX_QUIET_SCALE)

    def _note_status(self) -> None:
        """Tell ``on_status_change`` when the receiver or its fix came or went (a cheap
        comparison per chunk instead of someone polling the status)."""
        now = (self.receiver_present, self.has_fix)
        if now != self._reported:
            self._reported = now
            if self.on_status_change is not None:
                self.on_status_change()

    def _judge(self, epochs: list[Fix]) -> list[tuple[Fix, str | None]]:
        verdicts: list[tuple[Fix, str | None]] = []
        filt = self.filter
        for fix in epochs:
            self.epochs += 1
            self.last_epoch = fix
            anchor, reanchored = filt.anchor, filt.reanchored
            reason = filt.accept(fix)
            if reason is None:
                self.recent.append(fix)
                if filt.reanchored != reanchored:
                    _log_time_event("the receiver's time moved: new anchor", fix, anchor, filt)
            elif reason == "time":  # rare, and the one drop a rider would otherwise never see
                _log_time_event("implausible fix time dropped", fix, anchor, filt)
            verdicts.append((fix, reason))
        self._note_status()
        return verdicts

    async def aclose(self) -> None:
        await self.source.aclose()


async def _next_of(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The iterator's next chunk; None at its end (a task's result cannot be a
    StopAsyncIteration)."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


def _log_time_event(event: str, fix: Fix, anchor: Fix | None, filt: FixFilter) -> None:
    """One line: the fix's time, what it was judged against, and the running count."""
    ref = filt.last_reference
    log.warning(
        event,
        fix_time=fix.time.isoformat(),
        last_fix_time=anchor.time.isoformat() if anchor is not None else None,
        seconds_off_clock=round(fix.unix - ref, 1) if ref is not None else None,
        dropped_for_time=filt.drops["time"],
        reanchored=filt.reanchored,
    )


def configured_rollover_floor(gps: GpsSettings) -> date | None:
    """``[gps] week_rollover_floor`` as a date, or None when no date is to be moved."""
    value = gps.week_rollover_floor
    if value == "auto":
        return None if gps.source == "replay" else LIVE_ROLLOVER_FLOOR
    return None if value == "off" else date.fromisoformat(value)


def open_fix_stream(
    gps: GpsSettings,
    filters: FilterSettings,
    *,
    ring_capacity: int = 600,
    rollover_floor: date | None = USE_DEFAULT,
    source: Any = None,
    clock: Clock | None = None,
) -> FixStream:
    """The configured GPS input as a FixStream (nothing is opened until iteration starts).

    ``rollover_floor`` defaults to ``[gps] week_rollover_floor`` (see
    :func:`configured_rollover_floor`); pass None to keep a replayed-through-serial demo log's
    own dates. ``source`` overrides the configured one (tests, demo). ``clock``: the reference
    time fixes are checked against (:func:`tracker.gps.sysclock.synchronised_system_time` for a
    live receiver; None for a recording, which only gets the gap rule, see
    :mod:`tracker.gps.filters`).
    """
    if source is None:
        source = _make_source(gps)
    if rollover_floor is USE_DEFAULT:
        rollover_floor = configured_rollover_floor(gps)
    return FixStream(
        source,
        FixFilter(filters.max_hdop, filters.max_speed_mps, clock=clock),
        decoder=FixDecoder(rollover_floor=rollover_floor),
        ring_capacity=ring_capacity,
    )


def _make_source(gps: GpsSettings) -> Any:
    if gps.source == "serial":
        from tracker.gps.serial import SerialSource

        return SerialSource(gps.device, gps.baud)
    if gps.source == "replay":
        if not gps.replay_file:
            raise ConfigError('[gps] source = "replay" needs replay_file = "PATH"')
        from tracker.gps.replay import ReplaySource

        return ReplaySource(gps.replay_file, gps.replay_speed)
    if gps.source == "gpsd":
        from tracker.gps.gpsd import GpsdSource

        return GpsdSource(gps.gpsd_host, gps.gpsd_port)
    raise ConfigError(f"[gps] source: unknown source {gps.source!r}")
