"""Heart rate from the strap's packets to the server's inspection JSON, with real components.

The real service (``tracker.engine.service.Service``) with its real SQLite outbox, uplink and
API client
talks to the real emulator over loopback. The heart-rate source is the real
``HeartRateSource`` wired to the engine's own GPS-time anchor; only the Bluetooth layer is the
fake radio. Fixes come from the test, one per GPS second, and the engine and the source share
one manual monotonic clock, so every timestamp is known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tracker.bike.heart_rate.protocol import describe_heart_rate_status
from tracker.bike.heart_rate.source import HeartRateSource
from tracker.commands.status import render_service, service_status
from tracker.config import Settings
from tracker.emulator.runner import EmulatorHandle, running_emulator
from tracker.engine.control_socket import send_command
from tracker.engine.service import Service
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.tokens import TokenStore
from tracker.model import Fix, FixMode

from .engine_support import engine_settings, running
from .heart_rate_support import START, FakeLink, FakeRadio, hr_packet, until

T0 = 1_760_000_000  # GPS seconds of the first fix (a plausible date for the strict emulator)


class MonoClock:
    """The monotonic clock the engine and the source share; the test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def fix_at(second: int) -> Fix:
    unix = float(T0 + second)
    return Fix(
        time=datetime.fromtimestamp(unix, UTC),
        unix=unix,
        lat=45.0 + second * 1e-4,
        lon=7.0 + second * 1e-4,
        mode=FixMode.FIX_3D,
        alt_msl=200.0,
        speed_mps=10.0,
        sats=9,
        hdop=0.9,
    )


class Ride:
    """Drives the service: fixes through its stream, packets through the fake strap."""

    def __init__(self, svc: Service, clock: MonoClock, radio: FakeRadio) -> None:
        self.svc = svc
        self.clock = clock
        self.radio = radio
        self.fixes: asyncio.Queue[Fix | None] = asyncio.Queue()

    async def stream(self) -> AsyncIterator[Fix]:
        while (fix := await self.fixes.get()) is not None:
            yield fix

    async def strap(self) -> FakeLink:
        await until(lambda: bool(self.radio.links) and self.svc.heart_rate.state == "connected")
        return self.radio.links[-1]

    async def fix(self, second: int) -> None:
        """The fix of GPS second T0+second arrives at monotonic START+second."""
        self.clock.now = START + second
        count = self.svc.counters.fixes
        await self.fixes.put(fix_at(second))
        await until(lambda: self.svc.counters.fixes == count + 1)

    async def beat(self, link: FakeLink, at: float, bpm: int) -> None:
        """A notification arriving at monotonic START+at, handed to the engine."""
        self.clock.now = START + at
        staged = self.svc.counters.hr_samples
        samples = self.svc.heart_rate.status()["counters"]["samples"]
        link.notify(hr_packet(bpm))
        await until(
            lambda: (
                self.svc.heart_rate.status()["counters"]["samples"] == samples
                or self.svc.counters.hr_samples > staged
            )
        )


def settings_for(emu: EmulatorHandle, data: Path) -> Settings:
    s = engine_settings(data, emu).replace("activity", autostart=True)
    return s.replace("heart_rate", enabled=True, device="auto")


@asynccontextmanager
async def riding(
    emu: EmulatorHandle, data: Path, radio: FakeRadio
) -> AsyncIterator[tuple[Service, Ride]]:
    """A running service whose strap is ``radio``; stopped (not crashed) on exit."""
    settings = settings_for(emu, data)
    store = TokenStore.in_dir(data)
    if store.load() is None:
        store.save(emu.issue_tokens())
    clock = MonoClock()
    svc = Service(
        settings,
        handle_signals=False,
        client_factory=lambda: MapMyTracksClient(settings.api, store),
        monotonic=clock,
    )
    ride = Ride(svc, clock, radio)
    svc.fix_stream = ride.stream
    # What open_heart_rate_source builds for device="auto", with the radio swapped for the fake
    # and the engine's own (GPS time, monotonic) anchor and clock.
    svc.heart_rate = HeartRateSource(
        radio, settings.heart_rate.device, svc.recorder.gps_anchor, clock=clock
    )
    async with running(svc):
        yield svc, ride


async def inspection(emu: EmulatorHandle) -> list[dict[str, Any]]:
    """GET /_emulator/activities: what the server stored, as any client would see it."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emu.root_url}/_emulator/activities") as reply,
    ):
        assert reply.status == 200
        body: list[dict[str, Any]] = await reply.json()
        return body


async def emulator_page(emu: EmulatorHandle) -> str:
    async with aiohttp.ClientSession() as session, session.get(emu.inspect_url) as reply:
        assert reply.status == 200
        return await reply.text()


async def test_heart_rate_rides_with_the_points_into_the_emulator(tmp_path: Path) -> None:
    data = tmp_path / "data"
    radio = FakeRadio()
    async with running_emulator() as emu, riding(emu, data, radio) as (svc, ride):
        link = await ride.strap()
        await ride.beat(link, -0.5, 95)  # before the first fix: no trusted time, dropped
        for second in range(30):
            await ride.fix(second)
            await ride.beat(link, second + 0.25, 100 + second)
            await ride.beat(link, second + 0.75, 200)  # same GPS second: thinned
            if second == 10:
                link.notify(b"\x10\x50\x01")  # a garbled notification: counted, skipped
        assert svc.counters.hr_samples == 30

        # `tracker status` (over the real control socket) shows the strap.
        reply = await asyncio.to_thread(send_command, data, "status")
        hr_status = reply["status"]["heart_rate"]
        assert hr_status["state"] == "connected"
        assert hr_status["last_hr"] == 129
        assert hr_status["last_timestamp"] == T0 + 29
        assert hr_status["malformed"] == 1
        assert hr_status["counters"]["no_gps_time"] == 1
        assert hr_status["counters"]["thinned"] == 30
        assert describe_heart_rate_status(hr_status).startswith(
            "heart rate: connected (Fake H10 (AA:BB:CC:DD:EE:01)), last 129 bpm"
        )
        section = await asyncio.to_thread(service_status, svc.settings)
        (line,) = [t for t in render_service(section) if t.startswith("  heart rate:")]
        assert line.startswith("  heart rate: connected (Fake H10")
        assert "last 129 bpm" in line

        await ride.fixes.put(None)  # end of the ride: the engine stops the activity
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")

        (remote,) = await inspection(emu)
        page = await emulator_page(emu)
    assert remote["hr"] == [{"hr": 100 + s, "timestamp": T0 + s} for s in range(30)]
    # …and the emulator's page draws them as a heart-rate line under the track.
    assert "30 heart-rate samples" in page
    assert "Heart rate 100–129 bpm" in page
    assert "<svg class='hr'" in page
    assert remote["points"][0]["timestamp"] == T0
    assert remote["points"][-1]["timestamp"] == T0 + 29
    assert remote["duplicates"] == 0


async def test_heart_rate_waiting_in_the_outbox_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_emulator() as emu:
        emu.set_faults(down=True)  # no network for the first part of the ride
        radio = FakeRadio()
        async with riding(emu, data, radio) as (svc, ride):
            link = await ride.strap()
            for second in range(10):
                await ride.fix(second)
                await ride.beat(link, second + 0.5, 120 + second)
            assert svc.counters.hr_samples == 10
            # Committed: the outbox offers samples to the uplink only once they are on disk.
            (rec,) = svc.outbox.activities()
            await until(lambda: svc.outbox.pending_hr_count(rec.local_id) == 10)
        # The service is gone (a restart leaves the activity recording); the samples are
        # only on disk now. The network comes back and the service starts again.
        emu.set_faults(down=False)
        radio = FakeRadio()
        async with riding(emu, data, radio) as (svc, ride):
            link = await ride.strap()
            for second in range(10, 15):
                await ride.fix(second)
                await ride.beat(link, second + 0.5, 120 + second)
            await ride.fixes.put(None)
            await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
            (remote,) = await inspection(emu)
    assert remote["hr"] == [{"hr": 120 + s, "timestamp": T0 + s} for s in range(15)]
    assert remote["duplicates"] == 0


async def test_heart_rate_after_the_last_fix_reaches_the_server(tmp_path: Path) -> None:
    """GPS lost in a tunnel, strap still on: the samples keep their GPS-clock time (mapped
    through the monotonic clock from the last fix) and must reach the server, even though no
    point follows them before the ride is stopped."""
    data = tmp_path / "data"
    radio = FakeRadio()
    async with running_emulator() as emu, riding(emu, data, radio) as (svc, ride):
        link = await ride.strap()
        for second in range(5):
            await ride.fix(second)
            await ride.beat(link, second + 0.5, 110 + second)
        for second in range(5, 10):  # no more fixes
            await ride.beat(link, second + 0.5, 110 + second)
        assert svc.counters.hr_samples == 10
        reply = await asyncio.to_thread(send_command, data, "stop")
        assert reply["stopped"] is True
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        (remote,) = await inspection(emu)
    assert remote["hr"] == [{"hr": 110 + s, "timestamp": T0 + s} for s in range(10)]


async def test_heart_rate_without_any_point_to_carry_it_is_still_sent(tmp_path: Path) -> None:
    """One fix, then the GPS is lost while the strap goes on: the start (with that point) is
    confirmed, and from then on only HR samples wait. v3 refuses an update with an empty ``loc``,
    so they wait for a point; at the stop the ride's last point goes again to carry them (the
    server counts it as a duplicate), and nothing is left in the outbox."""
    data = tmp_path / "data"
    radio = FakeRadio()
    async with running_emulator() as emu, riding(emu, data, radio) as (svc, ride):
        link = await ride.strap()
        await ride.fix(0)
        await ride.beat(link, 0.5, 110)
        await until(lambda: bool(emu.activities) and len(emu.activities[0].points) == 1)
        for second in range(1, 5):
            await ride.beat(link, second + 0.5, 110 + second)
        assert svc.counters.hr_samples == 5
        reply = await asyncio.to_thread(send_command, data, "stop")
        assert reply["stopped"] is True
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
        (remote,) = await inspection(emu)
        (rec,) = svc.outbox.activities()
        assert svc.outbox.pending_hr(rec.local_id) == []
    assert remote["hr"] == [{"hr": 110 + s, "timestamp": T0 + s} for s in range(5)]
    assert remote["points"] == [{"lat": 45.0, "lon": 7.0, "ele": 200.0, "timestamp": T0}]
    assert remote["duplicates"] == 1  # the carrier
    assert "updateActivity" in remote["requests"]


async def test_a_wrong_heart_rate_device_is_said_once_and_the_ride_goes_on(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with running_emulator() as emu:
        settings = settings_for(emu, data).replace(
            "heart_rate", device=f"replay:{tmp_path / 'no-such-recording.hr'}"
        )
        store = TokenStore.in_dir(data)
        store.save(emu.issue_tokens())
        fixes: asyncio.Queue[Fix | None] = asyncio.Queue()

        async def stream() -> AsyncIterator[Fix]:
            while (fix := await fixes.get()) is not None:
                yield fix

        svc = Service(
            settings,
            handle_signals=False,
            client_factory=lambda: MapMyTracksClient(settings.api, store),
            fix_stream=stream,
        )
        async with running(svc):
            await until(lambda: svc.supervisor.health["heart_rate"].last_error is not None)
            health = svc.supervisor.health["heart_rate"]
            assert health.last_error is not None
            assert "no-such-recording.hr" in health.last_error
            assert health.restarts == 0  # not retried in a loop
            for second in range(3):
                await fixes.put(fix_at(second))
            await until(lambda: svc.counters.fixes == 3)
            assert svc.status().as_json()["heart_rate"] == {"state": "disabled"}
            assert svc.activities.current() is not None  # recording all the same (autostart)
