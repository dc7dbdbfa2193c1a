"""The whole service in one process: a real recorded ride through the real parser, filters,
sampler, SQLite outbox, uplink and API client, into the real emulator; start/stop/status over the
real control socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tracker.config import Settings
from tracker.emulator.runner import EmulatorHandle, running_emulator
from tracker.engine.control_socket import send_command
from tracker.engine.service import Service
from tracker.geo import haversine_m
from tracker.gps.stream import open_fix_stream
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.tokens import TokenStore
from tracker.model import Fix

from ..conftest import shared_file
from .engine_support import engine_settings, replay_ride, running, until

TRACK = ("tracks", "ROB__gx.to.gavres.nmea")


def sed_misses(fixes: list[Fix], points: list[Any], bound_m: float) -> list[tuple[float, float]]:
    """Fixes farther than bound_m from the track interpolated in time between kept points."""
    pts = sorted(points, key=lambda p: p.timestamp)
    misses = []
    j = 0
    for f in fixes:
        while j + 1 < len(pts) and pts[j + 1].timestamp <= f.unix:
            j += 1
        a = pts[j]
        b = pts[j + 1] if j + 1 < len(pts) else a
        if f.unix <= a.timestamp or b is a:
            lat, lon = a.lat, a.lon
        else:
            r = (f.unix - a.timestamp) / (b.timestamp - a.timestamp)
            lat, lon = a.lat + r * (b.lat - a.lat), a.lon + r * (b.lon - a.lon)
        d = haversine_m(f.lat, f.lon, lat, lon)
        if d > bound_m:
            misses.append((f.unix, d))
    return misses


@asynccontextmanager
async def service_with(
    tmp_path: Path, settings_for: Callable[[EmulatorHandle], Settings], **kw: Any
) -> AsyncIterator[tuple[EmulatorHandle, Service]]:
    async with running_emulator() as emu:
        settings = settings_for(emu)
        store = TokenStore.in_dir(settings.storage.resolved_data_dir())
        store.save(emu.issue_tokens())
        svc = Service(
            settings,
            handle_signals=False,
            client_factory=lambda: MapMyTracksClient(settings.api, store),
            **kw,
        )
        async with running(svc):
            yield emu, svc


async def test_a_recorded_ride_streams_end_to_end_within_the_error_bound(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"

    def settings_for(emu: EmulatorHandle) -> Settings:
        s = engine_settings(data, emu, source="replay", replay_file=str(log), replay_speed=0.0)
        return s.replace("activity", autostart=True)

    async with service_with(tmp_path, settings_for) as (emu, svc):
        await until(
            lambda: bool(emu.activities) and emu.activities[0].state == "stopped", limit_s=60
        )
        (remote,) = emu.activities
        # The reference: the same file through the same parser and filters.
        ref = [f async for f in open_fix_stream(svc.settings.gps, svc.settings.filters)]
        assert svc.counters.fixes == len(ref)
        assert len(ref) > 3000
        assert remote.duplicates == 0
        assert 10 < len(remote.points) < len(ref) / 5  # thinned hard, yet…
        assert sed_misses(ref, remote.points, 10.0 + 0.2) == []  # …within the bound
        status = svc.status().as_json()
        assert status["activity"]["state"] == "stopped"
        assert status["points_waiting"] == 0


async def test_control_socket_starts_stops_and_reports(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"
    gate = asyncio.Event()

    async def gated_stream() -> AsyncIterator[Fix]:
        n = 0
        async for fix in replay_ride(log):
            n += 1
            if n == 200:
                await gate.wait()  # hold the ride until the test has started the activity
            yield fix
        await asyncio.Event().wait()  # a receiver that stays on: the test stops the ride

    def settings_for(emu: EmulatorHandle) -> Settings:
        return engine_settings(data, emu)

    async with service_with(tmp_path, settings_for, fix_stream=gated_stream) as (emu, svc):
        await until(lambda: svc.counters.fixes >= 199)
        reply = await asyncio.to_thread(send_command, data, "status")
        assert reply["ok"] is True
        assert reply["status"]["recording"] is False
        assert reply["status"]["gps"]["has_fix"] is True
        started = await asyncio.to_thread(send_command, data, "start")
        assert started["started"] is True
        again = await asyncio.to_thread(send_command, data, "start")
        assert again["started"] is False  # one activity at a time
        gate.set()
        await until(lambda: svc.counters.fixes_recorded > 1000)
        stopped = await asyncio.to_thread(send_command, data, "stop")
        assert stopped["stopped"] is True
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        reply = await asyncio.to_thread(send_command, data, "status")
        st = reply["status"]
        assert st["activity"]["title"] == started["activity"]
        assert st["activity"]["remote_id"] == emu.activities[0].id
        assert st["uplink"]["link"] in ("up", "idle")
        assert st["uplink"]["last_success"] is not None
        assert st["login"]["state"] == "logged_in"
        assert (data / "tracker.sock").stat().st_mode & 0o777 == 0o600


async def test_heart_rate_samples_are_stored_and_sent_with_the_points(tmp_path: Path) -> None:
    from tracker.bike.heart_rate.source import open_heart_rate_source
    from tracker.config import HeartRateSettings

    log = shared_file(*TRACK)
    data = tmp_path / "data"
    release = asyncio.Event()

    async def slow_ride() -> AsyncIterator[Fix]:
        n = 0
        async for fix in replay_ride(log):
            n += 1
            if n > 300:
                await release.wait()
            elif n % 10 == 0:
                await asyncio.sleep(0.02)  # ~500 GPS seconds per wall second
            yield fix

    def settings_for(emu: EmulatorHandle) -> Settings:
        return engine_settings(data, emu).replace("activity", autostart=True)

    async with running_emulator() as emu:
        settings = settings_for(emu)
        store = TokenStore.in_dir(data)
        store.save(emu.issue_tokens())
        svc = Service(
            settings,
            handle_signals=False,
            fix_stream=slow_ride,
            client_factory=lambda: MapMyTracksClient(settings.api, store),
        )
        svc.heart_rate = open_heart_rate_source(
            HeartRateSettings(enabled=True, device="synthetic:3"),
            svc.recorder.gps_anchor,
            replay_speed=50.0,
        )
        task = asyncio.create_task(svc.run())
        await until(lambda: svc.counters.hr_samples >= 5 and svc.counters.fixes >= 300)
        release.set()
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        svc.stop()
        await task
        (remote,) = emu.activities
        stamps = [s.timestamp for s in remote.hr]
        assert len(stamps) >= 5
        assert stamps == sorted(set(stamps))  # at most one per second, in order
        assert remote.points[0].timestamp - 5 <= stamps[0] <= remote.points[-1].timestamp + 5
        assert svc.status().as_json()["heart_rate"]["state"] != "disabled"


async def test_a_service_restart_is_not_a_stop_and_a_failed_task_restarts(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"
    fixes = [f async for f in replay_ride(log)]
    half = len(fixes) // 2
    failures = [1]  # the first run of the gps task breaks once, like a flaky receiver

    def first_half() -> AsyncIterator[Fix]:
        async def gen() -> AsyncIterator[Fix]:
            for i, fix in enumerate(fixes[:half]):
                if i == 100 and failures:
                    failures.pop()
                    raise OSError("receiver glitch")
                yield fix
            await asyncio.Event().wait()

        return gen()

    def second_half() -> AsyncIterator[Fix]:
        async def gen() -> AsyncIterator[Fix]:
            for fix in fixes[half - 50 :]:  # some already seen: they are skipped
                yield fix

        return gen()

    def settings_for(emu: EmulatorHandle) -> Settings:
        return engine_settings(data, emu).replace("activity", autostart=True)

    async with running_emulator() as emu:
        settings = settings_for(emu)
        store = TokenStore.in_dir(data)
        store.save(emu.issue_tokens())

        def client() -> MapMyTracksClient:
            return MapMyTracksClient(settings.api, store)

        first = Service(
            settings, handle_signals=False, fix_stream=first_half, client_factory=client
        )
        task = asyncio.create_task(first.run())
        await until(lambda: first.counters.fixes >= half - 1 and bool(emu.activities))
        assert first.supervisor.health["gps"].restarts == 1
        assert "receiver glitch" in str(first.supervisor.health["gps"].last_error)
        title = first.activities.current().activity.title  # type: ignore[union-attr]
        first.stop()  # what SIGTERM does
        await task
        second = Service(
            settings, handle_signals=False, fix_stream=second_half, client_factory=client
        )
        task = asyncio.create_task(second.run())
        await wait_ready(second)
        # resumed, not a new activity (the short second half may already have ended it)
        assert [r.activity.title for r in second.outbox.activities()] == [title]
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        second.stop()
        await task
        assert second.counters.stale_fixes >= 1
        (remote,) = emu.activities
        assert remote.title == title
        assert remote.duplicates == 0
        ref = fixes[:100] + fixes[100 + 1 :]  # the fix at the glitch was never delivered
        assert sed_misses(ref, remote.points, 10.0 + 0.2) == []


async def wait_ready(svc: Service) -> None:
    await asyncio.wait_for(svc.wait_ready(), 10)


async def test_one_fix_an_hour_ahead_discards_nothing_after_it(tmp_path: Path) -> None:
    """Issue 14, defect 4: one checksum-valid epoch an hour ahead used to make the engine skip
    every later fix as stale (98 of 98 lost, nothing logged). Now the filters drop that one fix
    and the whole ride reaches the server."""
    from .test_gps_time_outlier import recording_with_one_bad_epoch

    lines, good = recording_with_one_bad_epoch()
    log = tmp_path / "one-bad-epoch.nmea"
    log.write_bytes(b"".join(lines))
    data = tmp_path / "data"

    def settings_for(emu: EmulatorHandle) -> Settings:
        s = engine_settings(data, emu, source="replay", replay_file=str(log), replay_speed=0.0)
        return s.replace("activity", autostart=True)

    async with service_with(tmp_path, settings_for) as (emu, svc):
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        (remote,) = emu.activities
        counters = svc.recorder.counters
        assert counters.stale_fixes == 0
        assert counters.fixes_recorded == len(good)
        assert svc.status().drops.get("time") == 1
        assert remote.points[0].timestamp == int(good[0].unix)
        assert remote.points[-1].timestamp == int(good[-1].unix)
