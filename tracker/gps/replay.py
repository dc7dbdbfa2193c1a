"""A recorded NMEA log as a GPS source, and file helpers for commands that read logs.

Replay keeps the receiver's own pace (from the NMEA times, see :mod:`tracker.gps.nmea.pacing`)
times ``speed``; ``speed = 0`` plays as fast as the consumer takes it. ``#`` comment lines (gpsd's
log headers) are skipped; LF and CRLF are both fine (the framer handles either).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date
from pathlib import Path

from tracker.errors import GpsInputError
from tracker.gps.nmea import DecoderStats, FixDecoder
from tracker.gps.nmea.decoder import Engine
from tracker.gps.nmea.pacing import epochs
from tracker.model import Fix

BLOCK = 1 << 16
REPLAY_QUIET_S = 0.01


def iter_log_blocks(path: str | Path, block: int = BLOCK) -> Iterator[bytes]:
    """The file's bytes in blocks of about ``block`` bytes, ``#`` comment lines removed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a generator needs it open
    except OSError as exc:
        raise GpsInputError(f"{path}: cannot read the log: {exc.strerror or exc}") from None
    with handle:
        while True:
            lines = handle.readlines(block)
            if not lines:
                return
            yield b"".join(line for line in lines if not line.startswith(b"#"))


def iter_log_lines(path: str | Path) -> Iterator[bytes]:
    """The file's lines (with their line ends), ``#`` comment lines removed."""
    for blob in iter_log_blocks(path):
        yield from blob.splitlines(keepends=True)


def iter_fixes(path: str | Path, decoder: FixDecoder | None = None) -> Iterator[Fix]:
    """Every epoch of a recorded log as a Fix, streaming (memory stays flat for any size)."""
    decoder = decoder or FixDecoder()
    for blob in iter_log_blocks(path):
        yield from decoder.feed(blob)
    yield from decoder.flush()


def read_fixes(
    path: str | Path, *, engine: Engine = "fast", rollover_floor: date | None = None
) -> tuple[list[Fix], DecoderStats]:
    """All epochs of a log file (including no-fix epochs: filter on ``fix.mode``) and counters."""
    decoder = FixDecoder(engine=engine, rollover_floor=rollover_floor)
    fixes = list(iter_fixes(path, decoder))
    return fixes, decoder.stats


Sleep = Callable[[float], Awaitable[None]]


class ReplaySource:
    """Async byte chunks from a log file at ``speed`` × the receiver's pace (0 = no waiting).

    ``max_gap_s`` caps the pause of a gap in the recording (receiver off, tunnel), in GPS
    seconds; ``sleep`` is injectable so tests run on a fake clock.
    """

    kind = "bytes"

    def __init__(
        self,
        path: str | Path,
        speed: float = 1.0,
        *,
        max_gap_s: float | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (as fast as possible) or more")
        self.path = Path(path).expanduser()  # as [gps] replay_file is checked at load
        self.speed = speed
        self.max_gap_s = max_gap_s
        self._sleep = sleep
        self.present = False
        self.finished = False
        self.epochs_played = 0
        self.gps_seconds_played = 0.0

    @property
    def name(self) -> str:
        return f"replay:{self.path}"

    @property
    def quiet_gap_s(self) -> float | None:
        """Bursts come whole, then a pause: a short silence ends one. None at speed 0 (a file
        read as fast as possible is not live: the next epoch's start tells for sure)."""
        return None if self.speed == 0 else REPLAY_QUIET_S

    async def chunks(self) -> AsyncIterator[bytes]:
        if not self.path.is_file():
            raise GpsInputError(f"{self.path}: no such log file")
        self.present = True
        try:
            if self.speed == 0:
                for blob in iter_log_blocks(self.path):
                    yield blob
                    await asyncio.sleep(0)  # let other tasks run between blocks
                return
            for burst in epochs(iter_log_lines(self.path)):
                gap = burst.gap_s
                if self.max_gap_s is not None:
                    gap = min(gap, self.max_gap_s)
                if gap > 0:
                    await self._sleep(gap / self.speed)
                self.gps_seconds_played += gap
                self.epochs_played += burst.timed
                yield b"".join(burst.lines)
        finally:
            self.present = False
            self.finished = True

    async def aclose(self) -> None:
        """Nothing to release: the file is closed when iteration ends."""
