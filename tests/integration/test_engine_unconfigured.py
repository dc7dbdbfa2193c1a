"""A real `tracker run` on a Pi whose [api] credentials are not set yet: it records anyway.

The points wait in the outbox, the LED and `tracker status` say "login needed", the service does
not exit (under systemd an exit would be a restart loop), and a SIGTERM closes it cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from tracker.storage.db import read_stored

from ..conftest import shared_file
from .engine_support import until
from .test_engine_storage import status_json, tracker

TRACK = ("tracks", "ROB__gx.to.gavres.nmea")


async def test_records_to_the_outbox_without_credentials(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[gps]
source = "replay"
replay_file = "{log}"
replay_speed = 0.0
[storage]
data_dir = "{data}"
[activity]
autostart = true
[gpio]
pin_factory = "none"
""",
        encoding="utf-8",
    )
    proc = await tracker("run", "--config", str(cfg))
    try:
        status: dict[str, object] = {}

        async def poll() -> bool:
            nonlocal status
            status = (await status_json(cfg)).get("service") or {}
            return bool(status.get("running"))

        for _ in range(600):
            if proc.returncode is not None or await poll():
                break
            await asyncio.sleep(0.1)
        assert proc.returncode is None, "the service exited instead of recording"
        await until(lambda: proc.returncode is not None or _waiting(data) > 10, limit_s=60)
        assert proc.returncode is None
        await poll()
        assert status["device_state"] == "login_needed"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"client_id and client_secret are not set" in err
    assert b"Unclosed client session" not in err
    assert _waiting(data) > 10  # every kept point is still on disk, waiting


def _waiting(data: Path) -> int:
    """Points on disk (none are sent: nothing can be)."""
    try:
        stored = read_stored(data)
    except (FileNotFoundError, sqlite3.Error):
        return 0
    return sum(len(points) for _, points, _hr in stored)
