"""SIGKILL a real `tracker run` that records heart rate; every committed sample still arrives.

A real process (`python -m tracker run --config …`) replays a recorded ride (GPS replay source,
compressed in time) and a recorded series of strap notifications (``[heart_rate] device =
"replay:<file>"``: the same source and pipeline as a strap, only the radio replaced). The test
kills it with SIGKILL once it has staged heart-rate samples, reads what the real SQLite outbox
holds, starts it again, and checks the emulator ends up with every one of those samples: the
same durability as the points (what was committed survives; only the last uncommitted half
second may die with the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

import pytest

from tracker.bike.heart_rate.protocol import format_packet_recording, synthetic_ride_packets
from tracker.emulator.runner import running_emulator
from tracker.mmt.tokens import TokenStore

from ..conftest import shared_file
from .engine_support import service_status, tracker_process, until, write_run_config

TRACK = ("tracks", "ROB__gx.to.gavres.nmea")  # 1 Hz, 75 min
GPS_SPEED = 20.0  # GPS seconds per real second
HR_GAP_S = 1 / GPS_SPEED  # notifications as fast as GPS seconds pass: ~one per GPS second


async def wait_for_hr_samples(data: Path, proc: asyncio.subprocess.Process, n: int) -> None:
    """Until the running service has staged ``n`` heart-rate samples (safety limit only)."""
    async with asyncio.timeout(60):
        while True:
            assert proc.returncode is None, "tracker run exited"
            status = await service_status(data)
            if status and status["engine"]["hr_samples"] >= n:
                return
            await asyncio.sleep(0.05)


def committed_hr(data: Path) -> list[tuple[int, int]]:
    """The heart-rate rows the outbox holds on disk (read-only, after the kill)."""
    db = sqlite3.connect(f"file:{data / 'outbox.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT timestamp, hr FROM heart_rate ORDER BY timestamp").fetchall()
    finally:
        db.close()
    return [(int(t), int(h)) for t, h in rows]


@pytest.mark.slow
async def test_sigkill_loses_no_committed_heart_rate_sample(tmp_path: Path) -> None:
    track = shared_file(*TRACK)
    data = tmp_path / "data"
    data.mkdir()
    recording = tmp_path / "strap.hr"
    series = [
        (n * HR_GAP_S, packet)
        for n, (_, packet) in zip(range(4000), synthetic_ride_packets(seed=5), strict=False)
    ]
    recording.write_text(format_packet_recording(series), encoding="utf-8")
    config = tmp_path / "tracker.toml"
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        gps = f'[gps]\nsource = "replay"\nreplay_file = "{track}"\nreplay_speed = {GPS_SPEED}'
        hr = f'[heart_rate]\nenabled = true\ndevice = "replay:{recording}"'
        more = f'{hr}\n[log]\nlevel = "warning"'
        write_run_config(
            config, data, emu, gps, batch_interval_s=0.2, title_prefix="HR crash test", more=more
        )
        proc = await tracker_process("run", "--config", str(config))
        try:
            await wait_for_hr_samples(data, proc, 40)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            on_disk = committed_hr(data)
            assert len(on_disk) >= 30  # all but the last half second's samples

            proc = await tracker_process("run", "--config", str(config))

            def all_arrived() -> bool:
                if not emu.activities:
                    return False
                stored = {(s.timestamp, s.hr) for s in emu.activities[0].hr}
                return stored.issuperset(on_disk)

            await until(all_arrived, limit_s=90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            await proc.wait()
        assert len(emu.activities) == 1, "a crash must never make a second activity"
        (remote,) = emu.activities
        stamps = [s.timestamp for s in remote.hr]
        assert stamps == sorted(set(stamps))  # at most one per second, in order
        assert min(s.hr for s in remote.hr) >= 20
        assert max(s.hr for s in remote.hr) <= 250
        print(f"committed before the kill: {len(on_disk)}; stored by the server: {len(stamps)}")
