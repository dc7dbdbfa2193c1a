"""The OAuth client and the login flow against the project's emulator (a real server on loopback).

Login with auto-approve (a plain HTTP client plays the browser), paste-back login, state
checking, refresh on expiry (emulator clock and client clock both moved, no sleeping), rotation
(the old refresh token is refused afterwards), revocation at logout.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tracker.config import ApiSettings
from tracker.emulator import EmulatorHandle, running_emulator
from tracker.errors import AuthError, LoginNeededError, TrackerError
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.expiry import Lifetime
from tracker.mmt.login import login, logout
from tracker.mmt.oauth import AiohttpOAuth2Client
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

from .engine_support import api_settings

POINT = Point(1_700_000_000, 51.5, -0.12, 12.0)


class Clock:
    """The emulator's clock (token expiry), moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server_clock() -> Clock:
    return Clock()


@pytest.fixture
async def emulator(server_clock: Clock) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True, token_ttl=60, clock=server_clock) as emu:
        yield emu


async def play_browser(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()


async def do_login(emu: EmulatorHandle, store: TokenStore) -> dict[str, Any]:
    return await login(api_settings(emu), store, open_browser=False, port=0, out=io.StringIO(),
                       on_authorize_url=play_browser)  # fmt: skip


async def test_login_with_auto_approve(emulator: EmulatorHandle, tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path / "data")
    record = await do_login(emulator, store)
    assert record["token_type"].lower() == "bearer"
    assert record["expires_in"] == 60
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    async with MapMyTracksClient(api_settings(emulator), store) as client:
        activity = await client.start_activity(
            title="First", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
    assert emulator.activity(activity).title == "First"


async def test_login_by_pasting_the_redirect_url(emulator: EmulatorHandle, tmp_path: Path) -> None:
    """The headless way: the browser elsewhere cannot reach the callback, the user pastes it."""
    store = TokenStore.in_dir(tmp_path)
    read_fd, write_fd = os.pipe()
    out = io.StringIO()

    async def phone(url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as r:
            final = r.headers["Location"]  # where the phone's browser would fail to go
        with os.fdopen(write_fd, "w") as paste:
            paste.write("not a url\n")
            paste.write(final.replace("state=", "state=forged") + "\n")
            paste.write(final + "\n")

    with os.fdopen(read_fd) as paste_input:
        record = await login(api_settings(emulator), store, open_browser=False, port=0, out=out,
                             paste_input=paste_input, on_authorize_url=phone)  # fmt: skip
    assert store.load_tokens() == record
    text = out.getvalue()
    assert "ssh -L" in text
    assert "paste it here" in text
    assert text.count("Not accepted") == 2


async def test_callback_with_a_wrong_state_is_refused_and_the_wait_goes_on(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)

    async def attacker_then_user(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, allow_redirects=False) as r:
                final = r.headers["Location"]
            async with session.get(final.replace("state=", "state=x")) as forged:
                assert forged.status == 400
            async with session.get(final) as real:
                assert real.status == 200

    await login(api_settings(emulator), store, open_browser=False, port=0, out=io.StringIO(),
                on_authorize_url=attacker_then_user)  # fmt: skip
    assert store.load_tokens() is not None


async def test_login_opens_the_browser(emulator: EmulatorHandle, tmp_path: Path) -> None:
    opened: list[str] = []

    def browser(url: str) -> bool:
        opened.append(url)
        return True

    await login(api_settings(emulator), TokenStore.in_dir(tmp_path), port=0, out=io.StringIO(),
                browser=browser, on_authorize_url=play_browser)  # fmt: skip
    assert len(opened) == 1
    assert "redirect_url=" in opened[0]
    assert "redirect_uri=" in opened[0]


async def test_denied_login_is_an_auth_error(tmp_path: Path) -> None:
    async with running_emulator(port=0, auto_approve=False) as emu:

        async def deny(url: str) -> None:
            # What the browser brings back when the user refuses (RFC 6749 §4.1.2.1).
            async with aiohttp.ClientSession() as session:
                state = url.split("state=")[1].split("&")[0]
                callback = url.split("redirect_uri=")[1].split("&")[0]
                from urllib.parse import unquote

                back = f"{unquote(callback)}?error=access_denied&state={state}"
                async with session.get(back) as resp:
                    assert resp.status == 400

        with pytest.raises(AuthError, match="access_denied"):
            await login(api_settings(emu), TokenStore.in_dir(tmp_path), open_browser=False,
                        port=0, out=io.StringIO(), on_authorize_url=deny)  # fmt: skip


async def test_login_times_out_clearly(emulator: EmulatorHandle, tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="no login approval"):
        await login(api_settings(emulator), TokenStore.in_dir(tmp_path), open_browser=False,
                    port=0, out=io.StringIO(), timeout_s=0.01)  # fmt: skip


async def test_refresh_on_expiry_and_rotation(
    emulator: EmulatorHandle, server_clock: Clock, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    first = await do_login(emulator, store)
    mono = [0.0]
    async with MapMyTracksClient(
        api_settings(emulator), store, monotonic=lambda: mono[0], clock=lambda: None
    ) as client:
        activity = await client.start_activity(
            title="Ttl", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
        # The server's token expires; the client cannot know (no trusted clock): 401 → refresh.
        server_clock.now += 61
        await client.update_activity(activity, [Point(POINT.timestamp + 1, 51.5001, -0.12)])
        assert client.oauth.refresh_count == 1
        second = store.load_tokens()
        assert second is not None
        assert second["refresh_token"] != first["refresh_token"]
        # Now the pair was received in-process: the monotonic clock knows its age, so the next
        # refresh happens proactively (no 401 on the way).
        server_clock.now += 50
        mono[0] += 50  # 10 s left of 60, inside the leeway (a quarter of the life)
        await client.update_activity(activity, [Point(POINT.timestamp + 2, 51.5002, -0.12)])
        assert client.oauth.refresh_count == 2
        assert emulator.request_counts()["updateActivity"].get("unauthorized", 0) == 1
        await client.stop_activity(activity)
    # Rotation: the first refresh token is dead at the server.
    async with aiohttp.ClientSession() as session:
        oauth = AiohttpOAuth2Client(session, base_url=emulator.base_url,
                                    client_id=emulator.client_id,
                                    client_secret=emulator.client_secret)  # fmt: skip
        with pytest.raises(Exception, match="invalid_grant"):
            await oauth.refresh_token(oauth.endpoints.token, refresh_token=first["refresh_token"])
    assert len(emulator.activity(activity).points) == 3


async def test_revoked_access_token_is_refreshed_once(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    record = await do_login(emulator, store)
    async with aiohttp.ClientSession() as session:
        oauth = AiohttpOAuth2Client(session, base_url=emulator.base_url,
                                    client_id=emulator.client_id,
                                    client_secret=emulator.client_secret)  # fmt: skip
        await oauth.revoke(record["access_token"], "access_token")
    async with MapMyTracksClient(api_settings(emulator), store) as client:
        activity = await client.start_activity(
            title="Rv", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
        assert activity > 0
        assert client.oauth.refresh_count == 1


async def test_logout_revokes_at_the_server(emulator: EmulatorHandle, tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    record = await do_login(emulator, store)
    # A second client holding the same pair in memory (a running service).
    async with MapMyTracksClient(api_settings(emulator), store) as running:
        await running.start_activity(
            title="L", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
        was, _message = await logout(api_settings(emulator), store)
        assert was
        assert not store.path.exists()
        with pytest.raises(LoginNeededError):
            await running.start_activity(
                title="L2", activity_type="cycling", status="private", tags=(), points=[POINT]
            )
    async with aiohttp.ClientSession() as session:
        oauth = AiohttpOAuth2Client(session, base_url=emulator.base_url,
                                    client_id=emulator.client_id,
                                    client_secret=emulator.client_secret)  # fmt: skip
        with pytest.raises(Exception, match="invalid_grant"):
            await oauth.refresh_token(oauth.endpoints.token, refresh_token=record["refresh_token"])


async def test_logout_when_the_server_is_down_keeps_the_tokens(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(emulator, store)
    emulator.set_faults(down=True)
    with pytest.raises(TrackerError, match="tokens are kept"):
        await logout(api_settings(emulator), store)
    assert store.load_tokens() is not None
    was, message = await logout(api_settings(emulator), store, forget=True)
    assert was
    assert "deleted the local tokens" in message
    assert not store.path.exists()


async def test_wrong_client_secret_is_a_clear_auth_error(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(emulator, store)
    settings = ApiSettings(base_url=emulator.base_url, client_id=emulator.client_id,
                           client_secret="wrong-secret-123456")  # fmt: skip
    async with MapMyTracksClient(settings, store, monotonic=lambda: 0.0) as client:
        client.oauth.policy.lifetime = Lifetime(60, None, -1000.0)  # long expired
        with pytest.raises(AuthError, match="client_id and client_secret") as caught:
            await client.stop_activity(1)
        assert "wrong-secret-123456" not in str(caught.value)
        assert not client.login_needed  # the tokens are fine: a config problem, not a login one
