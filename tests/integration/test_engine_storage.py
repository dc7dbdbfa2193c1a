"""A real `tracker run` with broken storage: a corrupt database, a read-only data dir. A clear
error, no crash loop (the process keeps running and keeps streaming from memory), and nothing
already stored is lost or overwritten."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from tracker.emulator.runner import EmulatorHandle, running_emulator
from tracker.mmt.tokens import TokenStore
from tracker.ride.activity import ActivityState
from tracker.storage.outbox import DB_NAME, Outbox, activity_with

from ..conftest import shared_file
from .engine_support import ride, tracker_process, until, write_run_config
from .test_outbox_store_support import db_modes, mode, read_only, umask

TRACK = ("tracks", "ROB__gx.to.gavres.nmea")


def config(path: Path, data: Path, emu: EmulatorHandle, gps: str) -> Path:
    return write_run_config(path, data, emu, gps, batch_interval_s=0.1)


async def tracker(*args: str) -> asyncio.subprocess.Process:
    return await tracker_process(*args, output=asyncio.subprocess.PIPE)


async def status_json(cfg: Path) -> dict[str, Any]:
    proc = await tracker("status", "--json", "--config", str(cfg))
    out, _ = await proc.communicate()
    return dict(json.loads(out))


async def test_corrupt_database_keeps_the_service_running_from_memory(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"
    data.mkdir()
    garbage = b"not a database, just bytes that were once one " * 100
    (data / DB_NAME).write_bytes(garbage)
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        gps = f'[gps]\nsource = "replay"\nreplay_file = "{log}"\nreplay_speed = 0.0'
        cfg = config(tmp_path / "c.toml", data, emu, gps)
        proc = await tracker("run", "--config", str(cfg))
        try:
            await until(
                lambda: bool(emu.activities) and emu.activities[0].state == "stopped", limit_s=60
            )
            assert proc.returncode is None  # no crash, no exit: still serving
            st = await status_json(cfg)
            service = st["service"]
            assert service["running"] is True
            assert "corrupt" in service["storage"]["error"]
            assert "move it aside" in service["storage"]["error"]
            assert service["device_state"] == "error"
            assert len(emu.activities[0].points) > 10  # streamed from memory
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
        assert proc.returncode == 0
        assert b"corrupt" in err
        assert (data / DB_NAME).read_bytes() == garbage


async def test_read_only_data_dir_still_sends_what_was_stored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    box = Outbox(data)
    await box.open()
    rec = await box.create_activity("Stored before the disk went read-only")
    box.stage(rec.local_id, ride(0, 20))
    await box.update_activity(activity_with(rec, state=ActivityState.STOPPING))
    await box.close()
    async with running_emulator() as emu:
        TokenStore.in_dir(data).save(emu.issue_tokens())
        cfg = config(
            tmp_path / "c.toml",
            data,
            emu,
            '[gps]\nsource = "serial"\ndevice = "/dev/no-such-gps"\nbaud = 9600',
        )
        before = (data / DB_NAME).read_bytes()
        with read_only(data):
            proc = await tracker("run", "--config", str(cfg))
            try:
                await until(
                    lambda: bool(emu.activities) and emu.activities[0].state == "stopped",
                    limit_s=60,
                )
                assert proc.returncode is None
                (remote,) = emu.activities
                assert remote.title == "Stored before the disk went read-only"
                assert [p.timestamp for p in remote.points] == [p.timestamp for p in ride(0, 20)]
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-3000:]
        assert b"read-only" in err
        assert (data / DB_NAME).read_bytes() == before


async def test_tracker_run_keeps_the_location_history_private(tmp_path: Path) -> None:
    """A data dir that a real `tracker run` creates under the usual umask 022 is 0700; the
    database, its -wal and its -shm are 0600 while the service writes them, and after."""
    log = shared_file(*TRACK)
    data = tmp_path / "fresh" / "data"  # nothing exists: the service creates it
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[gps]\nsource = "replay"\nreplay_file = "{log}"\nreplay_speed = 0.0\n'
        f'[storage]\ndata_dir = "{data}"\n[activity]\nautostart = true\n'
        '[gpio]\npin_factory = "none"\n',
        encoding="utf-8",
    )
    db = data / DB_NAME
    wal, shm = (db.with_name(db.name + s) for s in ("-wal", "-shm"))
    with umask(0o022):
        proc = await tracker("run", "--config", str(cfg))
    try:
        # Recording (no credentials: the points stay in the outbox), the WAL being written.
        await until(
            lambda: (
                proc.returncode is not None
                or (shm.exists() and wal.exists() and wal.stat().st_size > 0)
            ),
            limit_s=60,
        )
        assert proc.returncode is None
        assert mode(data) == 0o700
        assert db_modes(db) == {db.name: 0o600, wal.name: 0o600, shm.name: 0o600}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert mode(data) == 0o700
    assert set(db_modes(db).values()) == {0o600}
    assert b"readable by other users" not in err  # created private, nothing to tighten
