"""A local gpsd as the GPS source (``source = "gpsd"``): its JSON TPV reports become fixes.

gpsd already owns the receiver (and may share it with chrony, a chart plotter, ...), so this
source asks it to ``?WATCH`` in JSON and turns every TPV that has a time into a Fix with
:func:`tracker.gps.tpv.tpv_to_fix`. Lost connections are logged once and retried with backoff,
like the serial source. When gpsd itself loses the receiver (unplugged; udev tells gpsd) it
says so with a DEVICE report: logged once, and :attr:`GpsdSource.present` follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from tracker.gps.tpv import tpv_to_fix
from tracker.logs import get_logger
from tracker.model import Fix
from tracker.retry import RECONNECT, Backoff, RetryPolicy, Sleep

log = get_logger("gps.gpsd")


WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_LINE = 1 << 16


class GpsdSource:
    """Async Fix objects from gpsd; ``None`` marks a break (connection lost)."""

    kind = "fixes"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        *,
        retry: RetryPolicy = RECONNECT,
        sleep: Sleep = asyncio.sleep,
        idle_timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self._backoff = Backoff(retry, sleep)
        self.idle_timeout_s = idle_timeout_s
        self.present = False
        self.sentences = 0  # JSON reports received
        self.bad_reports = 0
        self.connects = 0
        self._closed = False

    @property
    def name(self) -> str:
        return f"gpsd:{self.host}:{self.port}"

    async def fixes(self) -> AsyncIterator[Fix | None]:
        reported = False
        while not self._closed:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
            except OSError as exc:
                if not reported:
                    log.warning("gpsd not reachable, retrying", host=self.host, port=self.port,
                                reason=exc.strerror or str(exc))  # fmt: skip
                    reported = True
                await self._backoff.wait()
                continue
            self._backoff.reset()
            reported = False
            self.connects += 1
            log.info("gpsd connected", host=self.host, port=self.port)
            reason = "connection closed"
            try:
                writer.write(WATCH)
                await writer.drain()
                async for fix in self._reports(reader):
                    yield fix
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                self.present = False
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if self.closed:
                return
            log.warning("gpsd connection lost, retrying", reason=reason)
            reported = True
            yield None

    async def _reports(self, reader: asyncio.StreamReader) -> AsyncIterator[Fix]:
        while True:
            line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
            if not line:
                return
            try:
                report = json.loads(line)
            except ValueError:
                self.bad_reports += 1
                continue
            if not isinstance(report, dict):
                self.bad_reports += 1
                continue
            self.sentences += 1
            cls = report.get("class")
            if cls == "DEVICES":
                self.present = bool(report.get("devices"))
            elif cls == "DEVICE":
                self._device(report)
            elif cls == "TPV":
                self.present = True
                try:
                    fix = tpv_to_fix(report)
                except (ValueError, TypeError):
                    self.bad_reports += 1
                    continue
                if fix is not None:
                    yield fix

    def _device(self, report: dict[str, object]) -> None:
        """gpsd lost or regained its receiver (unplugged, replugged: udev tells gpsd)."""
        activated = report.get("activated")
        if activated in (0, None, ""):
            if self.present:
                log.warning("gpsd lost the gps receiver", device=report.get("path"))
            self.present = False
        else:
            if not self.present and self.connects:
                log.info("gpsd has the gps receiver", device=report.get("path"))
            self.present = True

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
