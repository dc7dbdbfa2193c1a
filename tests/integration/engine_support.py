"""Shared pieces of the engine tests: a fake clock, a real emulator, a real API client."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tracker.config import ActivitySettings, ApiSettings, Settings, UplinkSettings
from tracker.demo import emulator_settings
from tracker.emulator.runner import EmulatorHandle, running_emulator
from tracker.engine.control_socket import send_command
from tracker.engine.service import Service
from tracker.engine.uplink import Uplink
from tracker.gps.stream import FixStream, open_fix_stream
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.gpx import build_gpx
from tracker.mmt.tokens import TokenStore
from tracker.model import Point
from tracker.storage.outbox import Outbox


class FakeSleep:
    """Virtual time: every sleep returns at once (after one loop turn) and is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def monotonic(self) -> float:
        return self.now


UPLINK = UplinkSettings(
    batch_interval_s=10, max_batch_points=10, max_backoff_s=60, drain_interval_s=1.0
)


async def outbox_and_uplink(
    tmp_path: Path, client: object, sleep: FakeSleep
) -> tuple[Outbox, Uplink]:
    """A real outbox under ``tmp_path`` and an uplink to ``client`` on virtual time: batches of
    10, 10 s apart, backoff capped at 60 s, seeded jitter."""
    box = Outbox(tmp_path / "data")
    await box.open()
    up = Uplink(
        box,
        client,  # type: ignore[arg-type]
        UPLINK,
        ActivitySettings(),
        build_gpx=build_gpx,
        sleep=sleep,
        rng=random.Random(1),
        monotonic=sleep.monotonic,
    )
    return box, up


def api_settings(emu: EmulatorHandle) -> ApiSettings:
    """The ``[api]`` section of a client of ``emu`` (a 10 s timeout)."""
    return ApiSettings(
        base_url=emu.base_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        timeout_s=10.0,
    )


@asynccontextmanager
async def emulator_and_client(
    data_dir: Path, *, faults: Any = None
) -> AsyncIterator[tuple[EmulatorHandle, MapMyTracksClient]]:
    async with running_emulator(faults=faults) as emu:
        store = TokenStore.in_dir(data_dir)
        store.save(emu.issue_tokens())
        settings = ApiSettings(
            base_url=emu.base_url,
            client_id=emu.client_id,
            client_secret=emu.client_secret,
            timeout_s=5.0,
        )
        async with MapMyTracksClient(settings, store) as client:
            yield emu, client


def engine_settings(data_dir: Path, emu: EmulatorHandle, **gps: Any) -> Settings:
    """Settings for an in-process engine against ``emu``: quick batches, no GPIO."""
    s = emulator_settings(Settings(), emu, data_dir)
    s = s.replace("uplink", batch_interval_s=0.05, drain_interval_s=0.0, max_batch_points=100)
    s = s.replace("gpio", pin_factory="none")
    if gps:
        s = s.replace("gps", **gps)
    return s


def replay_ride(log: Path) -> FixStream:
    """The recorded ride ``log`` through the real replay source, parser and filters, as fast as
    it is read."""
    s = Settings().replace("gps", source="replay", replay_file=str(log), replay_speed=0.0)
    return open_fix_stream(s.gps, s.filters)


@asynccontextmanager
async def running(svc: Service) -> AsyncIterator[Service]:
    """``svc`` running in its own task, once ready; stopped (not crashed) and awaited on exit."""
    task = asyncio.create_task(svc.run())
    try:
        await asyncio.wait_for(svc.wait_ready(), 10)
        yield svc
    finally:
        svc.stop()
        await asyncio.wait_for(task, 20)


T0 = 1_760_000_000  # an October 2025 morning: plausible UNIX seconds for the strict emulator


def ride(start: int, n: int, step_s: int = 1) -> list[Point]:
    """Points of a straight ride heading north-east, one every ``step_s`` seconds after T0."""
    return [
        Point(T0 + start + i * step_s, round(45.0 + i * 1e-4, 6), round(7.0 + i * 1e-4, 6), 200.0)
        for i in range(n)
    ]


async def until(predicate: Callable[[], bool], limit_s: float = 30.0) -> None:
    """Poll a condition of a real running system (a server, a subprocess, a task) that offers
    no event to wait on; the limit is only a safety net, never a timed assertion."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - nothing to await: state of another party
            await asyncio.sleep(0.02)


def write_run_config(
    path: Path,
    data: Path,
    emu: EmulatorHandle,
    gps: str,
    *,
    batch_interval_s: float,
    title_prefix: str | None = None,
    max_batch_points: int | None = None,
    autostart: bool = True,
    more: str = "",
) -> Path:
    """The config file of a real `tracker run` against the emulator ``emu``: ``gps`` is the whole
    [gps] section, ``more`` any further sections; no GPIO."""
    title = "" if title_prefix is None else f'title_prefix = "{title_prefix}"'
    batch = "" if max_batch_points is None else f"max_batch_points = {max_batch_points}"
    path.write_text(
        f"""
{gps}
[storage]
data_dir = "{data}"
[api]
base_url = "{emu.base_url}"
client_id = "{emu.client_id}"
client_secret = "{emu.client_secret}"
timeout_s = 5.0
[activity]
autostart = {"true" if autostart else "false"}
{title}
[uplink]
batch_interval_s = {batch_interval_s}
drain_interval_s = 0.0
{batch}
[gpio]
pin_factory = "none"
{more}
""",
        encoding="utf-8",
    )
    return path


async def tracker_process(
    *args: str, output: int = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """``python -m tracker *args`` as a real subprocess; stdout and stderr go to ``output``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", *args, stdout=output, stderr=output
    )


async def service_status(data: Path) -> dict[str, Any] | None:
    """The running service's status over its control socket, or None while it does not answer."""
    try:
        reply = await asyncio.to_thread(send_command, data, "status", timeout_s=2.0)
    except Exception:
        return None
    status = reply.get("status")
    return status if isinstance(status, dict) else None
