"""One GPS input for the engine, whatever the source: accepted fixes plus live status.

``open_fix_stream(settings.gps, settings.filters)`` picks the source (serial, replay, gpsd),
runs its bytes through :class:`~tracker.gps.nmea.FixDecoder` and
:class:`~tracker.gps.filters.FixFilter`, keeps the recent accepted fixes in a
:class:`~tracker.gps.ring.RingBuffer`, and is an async iterator of accepted fixes. The
engine, the LEDs and ``tracker status`` read its status while it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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


class ByteSource(Protocol):
    """A source of raw receiver bytes; ``b""`` marks a break (device lost)."""

    kind: str
    present: bool

    @property
    def name(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


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
        if self.source.kind == "fixes":
            gen = self.source.fixes()
            async with contextlib.aclosing(gen):
                async for item in gen:
                    if item is not None:
                        for fix in self._accept([item]):
                            yield fix
            return
        decoder = self.decoder
        chunks = self.source.chunks()
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                epochs = decoder.feed(chunk) if chunk else decoder.resync()
                for fix in self._accept(epochs):
                    yield fix
        for fix in self._accept(decoder.flush()):
            yield fix

    def _accept(self, epochs: list[Fix]) -> list[Fix]:
        accepted: list[Fix] = []
        filt = self.filter
        for fix in epochs:
            self.epochs += 1
            self.last_epoch = fix
            anchor, reanchored = filt.anchor, filt.reanchored
            reason = filt.accept(fix)
            if reason is None:
                self.recent.append(fix)
                accepted.append(fix)
                if filt.reanchored != reanchored:
                    _log_time_event("the receiver's time moved: new anchor", fix, anchor, filt)
            elif reason == "time":  # rare, and the one drop a rider would otherwise never see
                _log_time_event("implausible fix time dropped", fix, anchor, filt)
        return accepted

    async def aclose(self) -> None:
        await self.source.aclose()


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
