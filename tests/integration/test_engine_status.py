"""`tracker status --json` keeps its keys (docs/engine.md lists them), and the control socket
answers an oversize request with one clear error instead of an unhandled exception."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from structlog.testing import capture_logs

from tracker.commands.status import collect, render_service
from tracker.emulator.runner import running_emulator
from tracker.engine.control_socket import MAX_REQUEST_BYTES, ControlServer
from tracker.engine.service import Service
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.tokens import TokenStore

from ..conftest import shared_file
from .engine_support import engine_settings, running, until

TRACK = ("tracks", "ROB__gx.to.gavres.nmea")

# The keys of `tracker status --json` as they were before the engine was split (captured from
# a real service on this track): the typed status must not add, drop or rename any.
SERVICE_KEYS = {
    "running", "pid", "uptime_s", "device_state", "gps", "drops", "engine", "activity",
    "recording", "uplink", "points_waiting", "login", "storage", "heart_rate", "tasks",
    "rides",  # added with independent rides (issue 14): every ride not on the server yet
}  # fmt: skip
SECTION_KEYS = {
    "gps": {
        "source", "receiver_present", "has_fix", "last_fix", "decoder", "filters",
        "recent_fixes", "recent_dropped", "last_fix_time", "lat", "lon", "sats", "mode", "fixes",
    },
    "engine": {"fixes", "fixes_recorded", "stale_fixes_skipped", "points_kept", "hr_samples"},
    "activity": {
        "title", "state", "remote_id", "upload_only", "points_recorded", "points_sent",
        "points_waiting", "requests", "last_upload",
    },
    "uplink": {
        "link", "last_success", "last_error", "requests", "failures", "next_retry_in_s",
        "points_sent",
    },
    "login": {"state", "token_seconds_left"},
    "storage": {"path", "error", "used_bytes"},
    "tasks": {"gps", "commit", "uplink", "state", "prune", "watchdog"},
}  # fmt: skip


async def test_status_json_keeps_its_keys_and_reports_the_outbox_size(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"
    async with running_emulator() as emu:
        s = engine_settings(data, emu, source="replay", replay_file=str(log), replay_speed=0.0)
        s = s.replace("activity", autostart=True)
        store = TokenStore.in_dir(data)
        store.save(emu.issue_tokens())
        svc = Service(
            s, handle_signals=False, client_factory=lambda: MapMyTracksClient(s.api, store)
        )
        async with running(svc):
            await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped")
            status = json.loads(json.dumps(await asyncio.to_thread(collect, s)))
    service = status["service"]
    assert set(service) == SERVICE_KEYS
    for section, keys in SECTION_KEYS.items():
        assert set(service[section]) == keys, section
    assert set(service["tasks"]["gps"]) == {"restarts", "last_error"}
    assert service["heart_rate"] == {"state": "disabled"}
    assert service["storage"]["used_bytes"] > 0  # was always null
    assert service["activity"]["state"] == "stopped"
    text = "\n".join(render_service(service))
    assert "activity: " in text
    assert "(stopped)" in text


async def test_an_oversize_control_request_gets_one_clear_error(tmp_path: Path) -> None:
    async def handler(cmd: str, request: dict[str, object]) -> dict[str, object]:
        return {"ok": True, "cmd": cmd}

    server = ControlServer(tmp_path / "tracker.sock", handler)
    await server.start()

    def ask(line: bytes) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(tmp_path / "tracker.sock"))
            sock.sendall(line)
            reply: dict[str, object] = json.loads(sock.makefile("rb").readline())
            return reply

    try:
        with capture_logs() as logs:
            for size in (MAX_REQUEST_BYTES + 10, 100_000):
                pad = b"x" * size
                reply = await asyncio.to_thread(ask, b'{"cmd": "status", "pad": "' + pad + b'"}\n')
                assert reply["ok"] is False
                assert f"the limit is {MAX_REQUEST_BYTES} bytes" in str(reply["error"])
            fine = await asyncio.to_thread(ask, b'{"cmd": "status"}\n')
        assert fine == {"ok": True, "cmd": "status"}
        refused = [e for e in logs if e["event"] == "control request refused: too large"]
        assert len(refused) == 2
        assert all(e["log_level"] == "warning" for e in refused)
    finally:
        await server.close()
