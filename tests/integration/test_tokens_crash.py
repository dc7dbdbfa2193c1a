"""Crash safety of the refresh rotation: SIGKILL a real process at every step of a refresh.

A child process logs in with the stored pair and forces a refresh; the token store's crash hook
kills it with SIGKILL at one step. Then this (a new) process opens the same store and must be
able to continue: use the stored access token and refresh with the stored refresh token, the
server accepting both. The one step where that is impossible, and documented as such
(docs/login.md), is "reply_received": the server has rotated, the new pair existed only in the
dead process's memory, exactly like a reply lost in transit. There the new process must land
cleanly in "login needed", with the file intact.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tracker.emulator import EmulatorHandle, running_emulator
from tracker.errors import LoginNeededError
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.login import login
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

from .engine_support import api_settings

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, os, signal, sys
from tracker.mmt import tokens
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.tokens import TokenStore
from tracker.config import ApiSettings

base_url, client_id, client_secret, data_dir, step = sys.argv[1:6]

def hook(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)

tokens.crash_hook = hook

async def main():
    settings = ApiSettings(base_url=base_url, client_id=client_id, client_secret=client_secret)
    async with MapMyTracksClient(settings, TokenStore.in_dir(data_dir)) as client:
        current = client.oauth.token["access_token"]
        await client.oauth.ensure_active_token(failed_access_token=current)
        print("refreshed", flush=True)

asyncio.run(main())
"""

STEPS_RECOVERABLE = ["refresh_starting", "temp_written", "renamed", "dir_synced"]
STEP_LOST = "reply_received"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True) as emu:
        yield emu


async def logged_in_store(emu: EmulatorHandle, data_dir: Path) -> TokenStore:
    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200

    store = TokenStore.in_dir(data_dir)
    await login(api_settings(emu), store, open_browser=False, port=0, out=io.StringIO(),
                on_authorize_url=browser)  # fmt: skip
    return store


async def run_child(emu: EmulatorHandle, data_dir: Path, step: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, emu.base_url, emu.client_id, emu.client_secret,
        str(data_dir), step, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def continue_in_a_new_process(emu: EmulatorHandle, store: TokenStore) -> None:
    """Use the stored access token, then refresh with the stored refresh token."""
    async with MapMyTracksClient(api_settings(emu), store) as client:
        await client.start_activity(title="after the crash", activity_type="cycling",
                                    status="private", tags=(),
                                    points=[Point(1_700_000_000, 51.0, 0.0)])  # fmt: skip
        assert client.oauth.refresh_count == 0  # the stored access token was accepted
        current = client.oauth.token["access_token"]
        await client.oauth.ensure_active_token(failed_access_token=current)
        assert client.oauth.refresh_count == 1  # and so was the stored refresh token


@pytest.mark.parametrize("step", STEPS_RECOVERABLE)
async def test_killed_at_a_recoverable_step_the_next_process_continues(
    emulator: EmulatorHandle, tmp_path: Path, step: str
) -> None:
    store = await logged_in_store(emulator, tmp_path)
    before = store.load_tokens()
    assert before is not None
    code, output = await run_child(emulator, tmp_path, step)
    assert code == -signal.SIGKILL, output
    after = store.load_tokens()  # promotes a complete temp file if the rename never happened
    assert after is not None
    if step == "refresh_starting":
        assert after["refresh_token"] == before["refresh_token"]  # nothing was sent
    else:
        assert after["refresh_token"] != before["refresh_token"]  # the rotated pair survived
        assert after["generation"] == before["generation"] + 1
    assert not store.tmp_path.exists()
    await continue_in_a_new_process(emulator, store)


async def test_killed_between_reply_and_write_is_the_documented_lost_reply_case(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = await logged_in_store(emulator, tmp_path)
    before = store.load_tokens()
    code, output = await run_child(emulator, tmp_path, STEP_LOST)
    assert code == -signal.SIGKILL, output
    assert store.load_tokens() == before  # intact, but its refresh token died at the server
    async with MapMyTracksClient(api_settings(emulator), store) as client:
        current = client.oauth.token["access_token"]
        with pytest.raises(LoginNeededError, match="tracker login"):
            await client.oauth.ensure_active_token(failed_access_token=current)
        assert client.login_needed
    record = json.loads(store.path.read_text())
    assert record["state"] == "login_needed"


async def test_an_uninterrupted_child_refresh_works(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The control: the same child with no crash step refreshes and exits 0."""
    store = await logged_in_store(emulator, tmp_path)
    code, output = await run_child(emulator, tmp_path, "none")
    assert code == 0, output
    assert "refreshed" in output
    await continue_in_a_new_process(emulator, store)
