"""SIGKILL a real `tracker run` at seeded random moments of a ride, restart it each time.

The receiver is a real pseudo-terminal fed by this test with a recorded ride (compressed in
time); the server is the real emulator on loopback. After the ride: exactly one activity, and
its points cover every fix the tracker received more than a second before each kill, within the
sampler's error bound. Only the last second before a kill may be lost (group commits twice a
second); nothing is sent twice beyond what an interrupted request repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import tty
from pathlib import Path
from typing import Any

import pytest

from tracker.emulator.runner import running_emulator
from tracker.engine.control_socket import send_command
from tracker.gps.filters import FixFilter
from tracker.gps.nmea import FixDecoder
from tracker.gps.stream import LIVE_ROLLOVER_FLOOR
from tracker.mmt.tokens import TokenStore
from tracker.model import Fix

from ..conftest import shared_file
from .engine_support import service_status, tracker_process, until, write_run_config
from .test_engine_service import sed_misses

EPOCHS_PER_S = 250  # the ride plays at 250× real time
KILLS = 6
SEED = 8


def epochs_of(log: Path) -> list[list[bytes]]:
    """The log's lines grouped into receiver epochs (a new epoch starts at each RMC)."""
    epochs: list[list[bytes]] = []
    for raw in log.read_bytes().splitlines():
        line = raw.strip()
        if not line.startswith(b"$"):
            continue
        if line[3:6] == b"RMC" or not epochs:
            epochs.append([])
        epochs[-1].append(line + b"\r\n")
    return epochs


async def start_tracker(config: Path, data: Path) -> asyncio.subprocess.Process:
    proc = await tracker_process("run", "--config", str(config))
    ready: dict[str, Any] = {}

    async def reading() -> bool:
        st = await service_status(data)
        if st is not None:
            ready.update(st)
        return bool(st and st["gps"].get("receiver_present"))

    async with asyncio.timeout(60):
        while not await reading():
            assert proc.returncode is None, "tracker run exited during start-up"
            await asyncio.sleep(0.05)
    return proc


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_at_most_the_last_second(tmp_path: Path) -> None:
    log = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    epochs = epochs_of(log)
    rng = random.Random(SEED)
    data = tmp_path / "data"
    data.mkdir()
    master, slave = os.openpty()
    tty.setraw(slave)
    device = os.ttyname(slave)
    os.set_blocking(master, False)
    segments: list[list[tuple[float, bytes]]] = [[]]  # per process: (write time, line)
    kills: list[float] = []
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        config = tmp_path / "tracker.toml"
        gps = f'[gps]\nsource = "serial"\ndevice = "{device}"\nbaud = 9600\nsystem_clock = "ignore"'
        write_run_config(
            config,
            data,
            emu,
            gps,
            batch_interval_s=0.2,
            title_prefix="Crash test",
            max_batch_points=50,
            more='[log]\nlevel = "warning"',
        )
        proc = await start_tracker(config, data)
        next_kill = time.monotonic() + rng.uniform(1.0, 3.0)
        try:
            for i, epoch in enumerate(epochs):
                for line in epoch:
                    os.write(master, line)
                    segments[-1].append((time.monotonic(), line))
                await asyncio.sleep(1 / EPOCHS_PER_S)
                if len(kills) < KILLS and time.monotonic() >= next_kill and i < len(epochs) - 50:
                    proc.send_signal(signal.SIGKILL)
                    kills.append(time.monotonic())
                    await proc.wait()
                    proc = await start_tracker(config, data)
                    segments.append([])
                    next_kill = time.monotonic() + rng.uniform(1.0, 3.0)
            reply = await asyncio.to_thread(send_command, data, "stop")
            assert reply["stopped"] is True
            await until(
                lambda: bool(emu.activities) and emu.activities[0].state == "stopped", limit_s=60
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await proc.wait()
            os.close(master)
            os.close(slave)

        assert len(kills) == KILLS
        assert len(emu.activities) == 1, "a crash must never make a second activity"
        (remote,) = emu.activities
        assert remote.title.startswith("Crash test")

        # What the tracker received: the same bytes through the same decoder and filters, a
        # fresh pair for each process (the pty input is flushed when a new one opens it, and a
        # half-assembled epoch dies with the killed process); a fix counts from the moment the
        # line that completed it was written.
        received: list[tuple[float, Fix]] = []
        for segment in segments:
            decoder = FixDecoder(rollover_floor=LIVE_ROLLOVER_FLOOR)
            fix_filter = FixFilter(10.0, 90.0)
            for at, line in segment:
                for fix in decoder.feed(line):
                    if fix_filter.accept(fix) is None:
                        received.append((at, fix))

        def must_be_kept(at: float) -> bool:
            later = [k for k in kills if k >= at]
            return not later or at < later[0] - 1.0

        required = [fix for at, fix in received if must_be_kept(at)]
        assert len(required) > 0.6 * len(received)
        misses = sed_misses(required, remote.points, 10.0 + 0.2)
        assert misses == [], f"{len(misses)} received fixes not covered: {misses[:5]}"
        # Duplicates come only from requests cut by a kill: at most one batch per kill.
        print(
            f"kills={len(kills)} received={len(received)} required={len(required)} "
            f"points={len(remote.points)} duplicates={remote.duplicates}"
        )
        assert remote.duplicates <= KILLS * 50
