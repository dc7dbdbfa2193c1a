"""SIGKILL a real `tracker run` at seeded random moments of a ride, restart it each time.

The receiver is a real pseudo-terminal fed by this test with a recorded ride (compressed in
time); the server is the real emulator on loopback. After the ride: exactly one activity, and
its points cover every fix the tracker received more than a second before each kill, within the
sampler's error bound. Only the last second before a kill may be lost (group commits twice a
second); nothing is sent twice beyond what an interrupted request repeats. Played fast, nearly
every commit is a SQLite transaction; played slower than a commit interval a fix, most commits
append to the fix journal, and a restart replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import tty
from dataclasses import dataclass
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
from tracker.storage.fix_journal import JOURNAL_NAME, read_journal

from ..conftest import shared_file
from .engine_support import service_status, tracker_process, until, write_run_config
from .test_engine_service import sed_misses

EPOCHS_PER_S = 250  # the ride plays at 250× real time
KILLS = 6
SEED = 8


@dataclass(frozen=True)
class Ride:
    """How a ride is played and interrupted: its pace, how many SIGKILLs at which seeded
    random gaps (seconds after each start), over which epochs of the log, and how many last
    epochs are left without a kill (the stop's flush must find a running tracker)."""

    epochs_per_s: float
    kills: int
    seed: int
    kill_gap_s: tuple[float, float]
    epochs: tuple[int | None, int | None] = (None, None)  # [start:stop] of the log's epochs
    no_kill_tail: int = 50


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


async def ride_with_kills(tmp_path: Path, ride: Ride) -> list[int]:
    """Play ``ride`` into a real `tracker run` over a pty, SIGKILL it ``ride.kills`` times and
    restart it each time, stop it, and check what the server got: one activity whose points
    cover every fix received more than a second before each kill, within the sampler's error
    bound, and duplicates only from requests cut by a kill. Returns how many whole records the
    fix journal held right after each kill (before the restart read it)."""
    log = shared_file("tracks", "ROB__gx.to.gavres.nmea")
    epochs = epochs_of(log)[slice(*ride.epochs)]
    rng = random.Random(ride.seed)
    data = tmp_path / "data"
    data.mkdir()
    master, slave = os.openpty()
    tty.setraw(slave)
    device = os.ttyname(slave)
    os.set_blocking(master, False)
    segments: list[list[tuple[float, bytes]]] = [[]]  # per process: (write time, line)
    kills: list[float] = []
    journal_at_kill: list[int] = []
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
        next_kill = time.monotonic() + rng.uniform(*ride.kill_gap_s)
        try:
            for i, epoch in enumerate(epochs):
                for line in epoch:
                    os.write(master, line)
                    segments[-1].append((time.monotonic(), line))
                await asyncio.sleep(1 / ride.epochs_per_s)
                if (
                    len(kills) < ride.kills
                    and time.monotonic() >= next_kill
                    and i < len(epochs) - ride.no_kill_tail
                ):
                    proc.send_signal(signal.SIGKILL)
                    kills.append(time.monotonic())
                    await proc.wait()
                    # What the killed process left for the next one to replay.
                    journal_at_kill.append(len(read_journal(data / JOURNAL_NAME)[0]))
                    proc = await start_tracker(config, data)
                    segments.append([])
                    next_kill = time.monotonic() + rng.uniform(*ride.kill_gap_s)
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

        assert len(kills) == ride.kills
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
            f"points={len(remote.points)} duplicates={remote.duplicates} "
            f"journal_at_kill={journal_at_kill}"
        )
        assert remote.duplicates <= ride.kills * 50
    return journal_at_kill


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """At 250 epochs/s: the kills land among commits that are nearly all SQLite transactions."""
    await ride_with_kills(tmp_path, Ride(EPOCHS_PER_S, KILLS, SEED, kill_gap_s=(1.0, 3.0)))


@pytest.mark.slow
async def test_sigkill_with_the_fix_journal_in_use_loses_at_most_the_last_second(
    tmp_path: Path,
) -> None:
    """With fixes more than COMMIT_INTERVAL_S apart, each staging is a leading-edge commit of
    its own, so a fix that keeps no point is committed to the fix journal: the kills land while
    the journal holds fixes the database's sampler state does not cover, and the restart must
    replay them (the same guarantees). 1.6 epochs/s, not 2: at exactly 2 a fix arrives about
    0.5 s after the last commit began, on either side of it by jitter, and about half the
    commits went to SQLite through the commit task, each emptying the journal (no kill found a
    record). 64 epochs of the same log, 3 kills."""
    journal_at_kill = await ride_with_kills(
        tmp_path,
        Ride(1.6, 3, SEED, kill_gap_s=(5.0, 9.0), epochs=(600, 664), no_kill_tail=6),
    )
    assert any(records > 0 for records in journal_at_kill), journal_at_kill
