"""Refresh under concurrency and under a failing disk.

* many tasks of one client hit 401 together: one refresh, every call succeeds;
* two clients (two services, or `tracker run` and a one-shot command) share one token file: the
  second never spends the refresh token the first already rotated, it adopts the new pair;
* the disk refuses the rotated pair: the pair is kept in memory (the old one is dead anyway),
  calls go on, and it is written as soon as the disk accepts it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tracker.emulator import EmulatorHandle, running_emulator
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.login import login
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

from .engine_support import api_settings

T0 = 1_700_000_000


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True) as emu:
        yield emu


@pytest.fixture
async def store(emulator: EmulatorHandle, tmp_path: Path) -> TokenStore:
    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200

    token_store = TokenStore.in_dir(tmp_path)
    await login(api_settings(emulator), token_store, open_browser=False, port=0,
                out=io.StringIO(), on_authorize_url=browser)  # fmt: skip
    return token_store


async def revoke_access_token(emu: EmulatorHandle, access_token: str) -> None:
    async with aiohttp.ClientSession() as session:
        from tracker.mmt.oauth import AiohttpOAuth2Client

        oauth = AiohttpOAuth2Client(session, base_url=emu.base_url, client_id=emu.client_id,
                                    client_secret=emu.client_secret)  # fmt: skip
        await oauth.revoke(access_token, "access_token")


async def test_simultaneous_401s_refresh_once(emulator: EmulatorHandle, store: TokenStore) -> None:
    async with MapMyTracksClient(api_settings(emulator), store) as client:
        activities = []
        for i in range(4):
            activities.append(
                await client.start_activity(
                    title=f"C{i}", activity_type="cycling", status="private", tags=(),
                    points=[Point(T0, 51.0, 0.0)],
                )
            )
        await revoke_access_token(emulator, client.oauth.token["access_token"])
        await asyncio.gather(*(client.stop_activity(a) for a in activities))
        assert client.oauth.refresh_count == 1
    assert all(emulator.activity(a).state == "stopped" for a in activities)


async def test_a_second_client_adopts_the_pair_the_first_rotated(
    emulator: EmulatorHandle, store: TokenStore
) -> None:
    settings = api_settings(emulator)
    async with (
        MapMyTracksClient(settings, store) as first,
        MapMyTracksClient(settings, store) as second,
    ):
        stale_access = second.oauth.token["access_token"]
        await first.oauth.ensure_active_token(failed_access_token=stale_access)
        assert first.oauth.refresh_count == 1
        # The refresh revoked nothing but the old refresh token; make the second client meet a
        # 401 with its stale access token, as it would at expiry.
        await revoke_access_token(emulator, stale_access)
        activity = await second.start_activity(title="Shared", activity_type="cycling",
                                               status="private", tags=(),
                                               points=[Point(T0, 51.0, 0.0)])  # fmt: skip
        assert second.oauth.refresh_count == 0  # it adopted the file's pair: nothing spent
        assert second.oauth.token["refresh_token"] == first.oauth.token["refresh_token"]
        assert not second.login_needed
        await first.stop_activity(activity)


async def test_a_refused_disk_keeps_the_new_pair_in_memory_until_it_can_be_written(
    emulator: EmulatorHandle, store: TokenStore
) -> None:
    async with MapMyTracksClient(api_settings(emulator), store) as client:
        before = store.load_tokens()
        assert before is not None
        store.tmp_path.mkdir()  # every save fails from now on (a full or read-only disk)
        current = client.oauth.token["access_token"]
        await client.oauth.ensure_active_token(failed_access_token=current)
        assert client.oauth.refresh_count == 1
        assert store.load_tokens() == before  # not written...
        activity = await client.start_activity(title="Disk", activity_type="cycling",
                                               status="private", tags=(),
                                               points=[Point(T0, 51.0, 0.0)])  # fmt: skip
        store.tmp_path.rmdir()  # ...until the disk is back: the next call writes it
        await client.stop_activity(activity)
        after = store.load_tokens()
        assert after is not None
        assert after["refresh_token"] == client.oauth.token["refresh_token"]
        assert after["refresh_token"] != before["refresh_token"]
