"""Replay at the recording's pace (fake clock) and the gpsd JSON source (a loopback server
speaking gpsd's protocol, replaying gpsd's own TPV reports from a .chk file).

The real gpsd is tested in test_gps_real_gpsd.py. The small server here stays only for what a
real gpsd cannot be made to do on demand: replay upstream gpsd 3.27's exact TPV reports (the
.chk files; Debian ships 3.22, whose reports differ) and drop a connection after exactly N
reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
import structlog

from tests.conftest import shared_file
from tracker.config import FilterSettings, GpsSettings
from tracker.errors import ConfigError, GpsInputError
from tracker.gps.filters import FixFilter
from tracker.gps.gpsd import GpsdSource
from tracker.gps.replay import ReplaySource, read_fixes
from tracker.gps.stream import open_fix_stream
from tracker.gps.tpv import tpv_to_fix
from tracker.model import Fix
from tracker.retry import RetryPolicy

SAFETY_TIMEOUT_S = 30


class FakeClock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def collect(source: ReplaySource) -> bytes:
    out = bytearray()
    async for chunk in source.chunks():
        out += chunk
    return bytes(out)


async def test_replay_keeps_the_receiver_pace_times_speed() -> None:
    path = shared_file("gpsd", "haicom-305N.log")  # 1 Hz, CRLF, '#' header
    clock = FakeClock()
    source = ReplaySource(path, speed=4.0, sleep=clock.sleep)
    data = await collect(source)
    assert b"#" not in data.split(b"\n", 1)[0]
    assert source.epochs_played == 74
    assert sum(clock.slept) == pytest.approx(source.gps_seconds_played / 4.0)
    assert max(clock.slept) <= 2.0 / 4.0  # a 1-2 s cadence, four times faster
    fast = await collect(ReplaySource(path, speed=0))
    assert fast == data  # same bytes, just no waiting


async def test_replay_caps_gaps() -> None:
    path = shared_file("tracks", "NmeaParser__NmeaSampleData.txt")  # gaps of 798 s and 1250 s
    clock = FakeClock()
    source = ReplaySource(path, speed=100.0, max_gap_s=10.0, sleep=clock.sleep)
    await collect(source)
    assert max(clock.slept) == pytest.approx(10.0 / 100.0)


async def test_open_fix_stream_replay_ends_with_the_file() -> None:
    path = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    settings = GpsSettings(source="replay", replay_file=str(path), replay_speed=0)
    stream = open_fix_stream(settings, FilterSettings())
    got = [fix async for fix in stream]
    reference, _ = read_fixes(path)
    offline = FixFilter(FilterSettings().max_hdop, FilterSettings().max_speed_mps)
    assert got == [f for f in reference if offline.accept(f) is None]
    assert len(got) == 3663
    assert stream.status().decoder["malformed"] == 1  # the truncated last line


async def test_replay_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="replay_file"):
        open_fix_stream(GpsSettings(source="replay"), FilterSettings())
    stream = open_fix_stream(
        GpsSettings(source="replay", replay_file="/nonexistent.nmea"), FilterSettings()
    )
    with pytest.raises(GpsInputError, match="no such log file"):
        async for _ in stream:
            pass


# -- gpsd ---------------------------------------------------------------------------------------


def gpsd_reports(name: str) -> list[bytes]:
    """gpsd's own TPV lines (those with a time) from one of its regression .chk files."""
    lines = shared_file("gpsd", name + ".chk").read_bytes().splitlines()
    return [line for line in lines if line.startswith(b'{"class":"TPV"') and b'"time"' in line]


class FakeGpsd:
    """Speaks gpsd's protocol on 127.0.0.1: VERSION, then on ?WATCH the DEVICES list and
    the reports. The first connection is dropped after ``drop_after`` reports."""

    def __init__(self, reports: list[bytes], drop_after: int) -> None:
        self.reports = reports
        self.drop_after = drop_after
        self.connections = 0
        self.watch_requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        writer.write(b'{"class":"VERSION","release":"3.25","rev":"3.25","proto_major":3}\n')
        self.watch_requests.append(await reader.readline())
        writer.write(
            b'{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0",'
            b'"driver":"NMEA0183","activated":"2024-01-01T00:00:00.000Z"}]}\n'
        )
        writer.write(b'{"class":"WATCH","enable":true,"json":true}\n')
        writer.write(b"this is not json\n")
        reports = self.reports[: self.drop_after] if first else self.reports[self.drop_after :]
        for line in reports:
            writer.write(line + b"\n")
        await writer.drain()
        writer.close()


async def test_gpsd_source_reads_tpv_and_reconnects() -> None:
    reports = gpsd_reports("haicom-305N.log")
    assert len(reports) > 50
    fake = FakeGpsd(reports, drop_after=20)
    port = await fake.start()
    source = GpsdSource("127.0.0.1", port, retry=RetryPolicy(initial_s=0.01, max_s=10.0, jitter=0))
    got: list[Fix | None] = []
    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            stream = source.fixes()
            async with contextlib.aclosing(stream):
                async for item in stream:
                    got.append(item)
                    if len(got) == len(reports) + 1:  # every report plus one break marker
                        break
    assert fake.server is not None
    fake.server.close()
    expected = [tpv_to_fix(json.loads(line)) for line in reports]
    assert got[:20] == expected[:20]
    assert got[20] is None  # the dropped connection
    assert got[21:] == expected[20:]
    assert source.connects == 2
    assert source.bad_reports == 2  # one non-JSON line per connection
    assert fake.watch_requests[0].startswith(b"?WATCH=")
    events = [entry["event"] for entry in logs]
    assert events.count("gpsd connection lost, retrying") == 1


async def test_open_fix_stream_gpsd_filters_repeated_reports() -> None:
    # gpsd sends several TPVs per epoch (one per sentence): the filter keeps the first.
    reports = gpsd_reports("haicom-305N.log")
    fake = FakeGpsd(reports, drop_after=len(reports))
    port = await fake.start()
    settings = GpsSettings(source="gpsd", gpsd_host="127.0.0.1", gpsd_port=port)
    stream = open_fix_stream(settings, FilterSettings(max_hdop=50.0))
    fixes: list[Fix] = []
    epochs = {json.loads(line)["time"] for line in reports if json.loads(line)["mode"] >= 2}
    async with asyncio.timeout(SAFETY_TIMEOUT_S):
        async for fix in stream:
            fixes.append(fix)
            if len(fixes) == len(epochs):
                break
    await stream.aclose()
    assert fake.server is not None
    fake.server.close()
    assert len({f.unix for f in fixes}) == len(fixes)
    status = stream.status()
    assert status.filters["repeated"] > 0
    assert status.receiver_present is True
    assert status.source == f"gpsd:127.0.0.1:{port}"


def test_read_fixes_helper(tmp_path: Path) -> None:
    log = tmp_path / "t.nmea"
    log.write_bytes(
        b"# a header line\r\n"
        b"$GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*62\r\n"
        b"$GPRMC,081837,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*63"
    )
    fixes, stats = read_fixes(log)
    assert len(fixes) == 2
    assert stats.garbage == 0
    assert stats.sentences == 2
