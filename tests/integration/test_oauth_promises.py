"""What login, refresh and logout now promise (issue 14, items 4, 8 and 9), each against a real
server on loopback: the emulator, or, for a token endpoint that misbehaves in a way the emulator
cannot (a huge reply), a few lines of aiohttp.

* the browser is told the outcome only after the code exchange;
* a callback with repeated or malformed parameters gets an error page, and the wait goes on;
* a token reply over 64 KiB is refused with a clear error and nothing is stored;
* a refresh is due by the monotonic clock of the process that received the pair, or after a 401:
  a wall clock (GPS-derived or wrong) never triggers one;
* the refresh reply gets time to arrive, even with a short ``[api] timeout_s``;
* ``tracker logout --forget`` removes a damaged token file.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from tracker.config import ApiSettings
from tracker.emulator import EmulatorHandle, running_emulator
from tracker.errors import AuthError, TrackerError
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.login import login, logout
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

from .engine_support import api_settings

POINT = Point(1_700_000_000, 51.5, -0.12, 12.0)
Browser = Callable[[str], Awaitable[None]]


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True, token_ttl=3600) as emu:
        yield emu


async def approve(session: aiohttp.ClientSession, url: str) -> str:
    """The address the authorize step sends the browser back to (the callback)."""
    async with session.get(url, allow_redirects=False) as resp:
        return resp.headers["Location"]


async def do_login(settings: ApiSettings, store: TokenStore, browser: Browser) -> dict[str, Any]:
    return await login(settings, store, open_browser=False, port=0, out=io.StringIO(),
                       on_authorize_url=browser, timeout_s=20)  # fmt: skip


async def plain_browser(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        back = await approve(session, url)
        async with session.get(back) as resp:
            assert resp.status == 200, await resp.text()


# -- the callback page -------------------------------------------------------------------------


async def test_a_failed_code_exchange_shows_an_error_page(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Before: the page said "Logged in" while the exchange (wrong client secret) failed."""
    pages: list[tuple[int, str]] = []

    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            back = await approve(session, url)
            async with session.get(back) as resp:
                pages.append((resp.status, await resp.text()))

    wrong = ApiSettings(base_url=emulator.base_url, client_id=emulator.client_id,
                        client_secret="wrong-secret-123456", timeout_s=10.0)  # fmt: skip
    store = TokenStore.in_dir(tmp_path)
    with pytest.raises(AuthError, match="invalid_client"):
        await do_login(wrong, store, browser)
    assert len(pages) == 1
    status, text = pages[0]
    assert status >= 400
    assert "Logged in" not in text
    assert "invalid_client" in text
    assert store.load() is None


async def test_the_success_page_comes_after_the_pair_is_stored(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    seen_on_disk: list[bool] = []

    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            back = await approve(session, url)
            async with session.get(back) as resp:
                assert resp.status == 200
                assert "Logged in" in await resp.text()
                seen_on_disk.append(store.load_tokens() is not None)

    await do_login(api_settings(emulator), store, browser)
    assert seen_on_disk == [True]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda back: back + "&state=" + _param(back, "state"), id="state-twice"),
        pytest.param(lambda back: back + "&code=" + _param(back, "code"), id="code-twice"),
        pytest.param(lambda back: back + "&code=other", id="two-codes"),
        pytest.param(lambda back: back.replace("code=", "code=%FF%FE"), id="code-not-utf8"),
        pytest.param(lambda back: back + "&error=access_denied", id="code-and-error"),
    ],
)
async def test_repeated_or_malformed_callback_parameters_get_an_error_page(
    emulator: EmulatorHandle, tmp_path: Path, spoil: Callable[[str], str]
) -> None:
    """Before: ``state`` twice was accepted, then the exchange raised a traceback."""
    statuses: list[int] = []

    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            back = await approve(session, url)
            async with session.get(spoil(back)) as resp:
                statuses.append(resp.status)
                assert "Logged in" not in await resp.text()
            async with session.get(back) as resp:  # the real return still completes the login
                statuses.append(resp.status)

    store = TokenStore.in_dir(tmp_path)
    await do_login(api_settings(emulator), store, browser)
    assert statuses == [400, 200]
    assert store.load_tokens() is not None


def _param(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


# -- a token endpoint that answers too much ------------------------------------------------------


@pytest.fixture
async def huge_token_server() -> AsyncIterator[str]:
    """A token endpoint whose every reply is a valid token padded past 64 KiB."""

    async def token(_request: web.Request) -> web.Response:
        body = {"access_token": "acc-huge-0123456789", "refresh_token": "ref-huge-0123456789",
                "token_type": "Bearer", "expires_in": 3600, "padding": "x" * 70_000}  # fmt: skip
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/api3/oauth/token", token)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api3"
    finally:
        await runner.cleanup()


def huge_settings(base_url: str) -> ApiSettings:
    return ApiSettings(base_url=base_url, client_id="id-huge", client_secret="secret-huge-0123",
                       timeout_s=10.0)  # fmt: skip


async def test_an_oversized_token_reply_at_login_is_refused(
    huge_token_server: str, tmp_path: Path
) -> None:
    pages: list[tuple[int, str]] = []

    async def browser(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        back = f"{query['redirect_uri'][0]}?code=code-0123456789&state={query['state'][0]}"
        async with aiohttp.ClientSession() as session, session.get(back) as resp:
            pages.append((resp.status, await resp.text()))

    store = TokenStore.in_dir(tmp_path)
    with pytest.raises(AuthError, match="too large"):
        await do_login(huge_settings(huge_token_server), store, browser)
    assert store.load() is None
    assert not store.path.exists()
    assert len(pages) == 1
    assert pages[0][0] >= 400
    assert "too large" in pages[0][1]


async def test_an_oversized_token_reply_on_refresh_is_refused(
    huge_token_server: str, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    old = {"access_token": "acc-old-0123456789", "refresh_token": "ref-old-0123456789",
           "token_type": "Bearer", "expires_in": 3600}  # fmt: skip
    store.save(old)
    before = store.path.read_bytes()
    async with MapMyTracksClient(huge_settings(huge_token_server), store) as client:
        with pytest.raises(AuthError, match="too large"):
            await client.oauth.ensure_active_token(failed_access_token=old["access_token"])
        assert client.oauth.token["access_token"] == old["access_token"]
    assert store.path.read_bytes() == before


# -- when to refresh ---------------------------------------------------------------------------


@pytest.mark.parametrize("wall", [1_800_000_000.0 + 3600 * 24 * 365 * 20, 10_000_000_000.0])
async def test_a_wall_clock_far_ahead_never_triggers_a_refresh(
    emulator: EmulatorHandle, tmp_path: Path, wall: float
) -> None:
    """Before: a GPS time (or a system clock) years ahead made the client refresh at once; with
    rotating refresh tokens a lost reply to that needless refresh logs the rider out."""
    store = TokenStore.in_dir(tmp_path)
    await do_login(api_settings(emulator), store, plain_browser)
    async with MapMyTracksClient(api_settings(emulator), store, clock=lambda: wall) as client:
        await client.start_activity(
            title="Clock", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
        assert client.oauth.refresh_count == 0
    assert emulator.request_counts().get("oauth/token:refresh_token", {}) == {}


async def test_the_refresh_reply_gets_time_to_arrive(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Before: the refresh used the API call timeout; a slow reply was abandoned after the server
    had rotated, and the next refresh was refused: the rider was logged out."""
    store = TokenStore.in_dir(tmp_path)
    await do_login(api_settings(emulator), store, plain_browser)
    short = ApiSettings(base_url=emulator.base_url, client_id=emulator.client_id,
                        client_secret=emulator.client_secret, timeout_s=0.3)  # fmt: skip
    async with MapMyTracksClient(short, store) as client:
        current = client.oauth.token["access_token"]
        emulator.set_faults(latency=0.8)
        await client.oauth.ensure_active_token(failed_access_token=current)
        emulator.set_faults(latency=0.0)
        assert client.oauth.refresh_count == 1
        assert not client.login_needed
        await client.start_activity(
            title="Slow", activity_type="cycling", status="private", tags=(), points=[POINT]
        )


# -- logout --forget -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"version": 1, "state": "odd"}'])
async def test_logout_forget_removes_a_damaged_token_file(
    emulator: EmulatorHandle, tmp_path: Path, content: bytes
) -> None:
    """Before: `logout --forget` refused a damaged file with the same error as without."""
    store = TokenStore.in_dir(tmp_path)
    with open(store.path, "wb") as damaged:  # noqa: ASYNC230 - a test's own fixture file
        damaged.write(content)
    with pytest.raises(TrackerError, match="--forget"):
        await logout(api_settings(emulator), store)
    assert store.path.exists()  # without --forget nothing is deleted
    was, message = await logout(api_settings(emulator), store, forget=True)
    assert not was
    assert "damaged" in message
    assert "deleted" in message
    assert not store.path.exists()
