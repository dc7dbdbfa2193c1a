"""`tracker emulator` as a real process: announces its URL, serves, stops, keeps state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tracker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

T0 = 1_763_809_643


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    assert proc.stdout is not None
    announced: dict[str, str] = {}
    for _ in range(4):  # blocks until the lines come (the process flushes them)
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            pytest.fail(f"emulator exited early: {proc.communicate()[1]}")
        key, _, value = line.strip().partition("=")
        announced[key] = value
    return proc, announced


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


async def start_activity(base_url: str, token: str, title: str) -> int:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("status", "private")
    form.add_field("activity_title", title)
    form.add_field("data", json.dumps({"loc": [
        {"lat": 51.0, "lon": 1.0, "timestamp": T0, "unix_timestamp": T0}]}))
    async with aiohttp.ClientSession() as http, http.post(
            f"{base_url}/startActivity", data=form,
            headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return int((await r.json())["activity_id"])


async def login(base_url: str, client_id: str, secret: str) -> dict[str, str]:
    redirect = "http://127.0.0.1:8765/cb"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/oauth/authorize", allow_redirects=False, params={
                "client_id": client_id, "redirect_url": redirect, "response_type": "code",
                "state": "s"}) as r:
            assert r.status == 302, await r.text()
            code = r.headers["Location"].split("code=")[1].split("&")[0]
        async with http.post(f"{base_url}/oauth/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                "client_id": client_id, "client_secret": secret}) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


async def test_process_announces_serves_and_keeps_state_across_restarts(tmp_path: Path):
    state = tmp_path / "emulator-state.json"
    proc, first = spawn("--auto-approve", "--state-file", str(state))
    try:
        assert first["base_url"].startswith("http://127.0.0.1:")
        assert first["base_url"].endswith("/api3")
        assert (first["client_id"], first["client_secret"]) == (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        assert first["inspect_url"].endswith("/_emulator/")
        tokens = await login(first["base_url"], first["client_id"], first["client_secret"])
        activity_id = await start_activity(first["base_url"], tokens["access_token"], "Kept")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert state.stat().st_mode & 0o777 == 0o600  # it holds tokens

    proc, second = spawn("--state-file", str(state))
    try:
        # Same activity and same login after a restart: a same-title start appends.
        again = await start_activity(second["base_url"], tokens["access_token"], "Kept")
        assert again == activity_id
        async with aiohttp.ClientSession() as http, \
                http.get(second["inspect_url"] + "activities") as r:
            [activity] = await r.json()
        assert activity["duplicates"] == 1
    finally:
        code, err = stop(proc, signal.SIGINT)
    assert code == 0, err


async def test_state_is_autosaved_so_sigkill_loses_nothing_accepted(tmp_path: Path):
    state = tmp_path / "state.json"
    proc, info = spawn("--auto-approve", "--state-file", str(state))
    try:
        tokens = await login(info["base_url"], info["client_id"], info["client_secret"])
        activity_id = await start_activity(info["base_url"], tokens["access_token"], "Killed")
        # Safety-net polling only: the autosave runs within about a second of the change.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if state.exists() and str(activity_id) in state.read_text():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("state file was not autosaved")
    finally:
        proc.kill()
        proc.communicate()
    proc, info = spawn("--state-file", str(state))
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(info["inspect_url"] + "activities") as r:
            [activity] = await r.json()
        assert (activity["id"], activity["title"]) == (activity_id, "Killed")
    finally:
        assert stop(proc)[0] == 0


def test_port_in_use_is_one_clear_error():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tracker", "emulator", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""


def test_damaged_state_file_is_one_clear_error(tmp_path: Path):
    state = tmp_path / "state.json"
    state.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "emulator", "--port", "0", "--state-file", str(state)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "cannot be loaded" in result.stderr
    assert result.stdout == ""


async def test_custom_credentials_and_faults_from_the_command_line():
    proc, info = spawn("--auto-approve", "--client-id", "cid", "--client-secret", "csecret",
                       "--faults", "latency=0.001,token_ttl=42,seed=3")
    try:
        assert (info["client_id"], info["client_secret"]) == ("cid", "csecret")
        tokens = await login(info["base_url"], "cid", "csecret")
        assert int(tokens["expires_in"]) == 42
        async with aiohttp.ClientSession() as http, \
                http.get(info["inspect_url"] + "faults") as r:
            faults = await r.json()
        assert (faults["latency"], faults["seed"]) == (0.001, 3)
    finally:
        assert stop(proc)[0] == 0


@pytest.mark.parametrize("args", [["--faults", "bogus=1"], ["--port", "70000"],
                                  ["--faults", "error_rate=3"]])
def test_bad_options_exit_2_with_one_line(args: list[str]):
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "emulator", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "config error" in result.stderr
    assert result.stdout == ""
