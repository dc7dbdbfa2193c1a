"""A real `tracker run` (real pty receiver, real emulator): a double press before the receiver
has a fix must not hold back the ride that follows (issue 14, defect 1: the empty activity stayed
``stopping`` for good and no later ride was ever sent, also after a restart)."""

from __future__ import annotations

import asyncio
import math
import signal
from datetime import date
from pathlib import Path

from tracker.emulator.runner import running_emulator
from tracker.engine.control_socket import send_command, socket_path
from tracker.gps.fake import FakeReceiver
from tracker.gps.replay import read_fixes
from tracker.mmt.tokens import TokenStore

from ..conftest import shared_file
from .engine_support import service_status, tracker_process, until, write_run_config

WALK = ("gpsd", "haicom-305N.log")  # a real 1 Hz receiver, 74 epochs of walking


async def command(data: Path, cmd: str) -> dict[str, object]:
    return await asyncio.to_thread(send_command, data, cmd, timeout_s=5.0)


async def test_a_double_press_before_the_first_fix_holds_back_nothing(tmp_path: Path) -> None:
    log = shared_file(*WALK)
    data = tmp_path / "data"
    link = tmp_path / "gps0"  # no receiver there yet: a cold start at home
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        gps = f'[gps]\nsource = "serial"\ndevice = "{link}"\nbaud = 4800\nsystem_clock = "ignore"'
        cfg = write_run_config(
            tmp_path / "c.toml", data, emu, gps, batch_interval_s=0.1, autostart=False
        )
        proc = await tracker_process("run", "--config", str(cfg))
        try:
            await until(lambda: socket_path(data).exists())
            assert (await command(data, "start"))["started"] is True  # the double press
            assert (await command(data, "stop"))["stopped"] is True
            with FakeReceiver(log, link=link, speed=8.0) as receiver:
                await asyncio.to_thread(receiver.wait_epochs, 3, 30)
                assert (await command(data, "start"))["started"] is True  # the real ride
                await asyncio.to_thread(receiver.done.wait, 60)
                assert (await command(data, "stop"))["stopped"] is True
            await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
            status = await service_status(data)
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    (remote,) = emu.activities  # the empty ride was never sent, the real one was
    assert len(remote.points) >= 3
    assert status is not None
    assert status["points_waiting"] == 0


async def test_a_stop_right_after_the_last_sentence_keeps_the_last_fix(tmp_path: Path) -> None:
    """Issue 15: a stop a moment after the receiver's last sentence (it goes on being plugged
    in, silent) still puts that last epoch in the ride: the stop closes the pending epoch."""
    log = shared_file(*WALK)
    data = tmp_path / "data"
    link = tmp_path / "gps0"
    # Dated as the serial source dates them (this 2007 log gets the 1024-week rollover).
    fixes, _ = read_fixes(log, rollover_floor=date(2025, 1, 1))
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        gps = f'[gps]\nsource = "serial"\ndevice = "{link}"\nbaud = 4800\nsystem_clock = "ignore"'
        cfg = write_run_config(tmp_path / "c.toml", data, emu, gps, batch_interval_s=0.1)
        with FakeReceiver(log, link=link, speed=8.0) as receiver:
            proc = await tracker_process("run", "--config", str(cfg))
            try:
                await asyncio.to_thread(receiver.done.wait, 60)  # the last byte is written
                assert (await command(data, "stop"))["stopped"] is True
                await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
            finally:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
    (remote,) = emu.activities
    # The ride ends at the second of its last fix (the sampler's flush): with the last epoch
    # lost it would end a second earlier.
    assert remote.points[-1].timestamp == math.ceil(fixes[-1].unix)
