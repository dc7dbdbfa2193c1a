"""The OAuth client against an independent server (oauthlib's WebApplicationServer).

Same flows as against the emulator, but the server side is a different library, so a protocol
mistake shared by our client and our emulator (both authlib) cannot hide.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.oauth_reference_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    ReferenceServer,
    running_reference_server,
)
from tracker.config import ApiSettings
from tracker.errors import AuthError, LoginNeededError, RetryableApiError
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.login import login, logout
from tracker.mmt.tokens import TokenStore
from tracker.model import HeartRateSample, Point

POINTS = [Point(1563809643, 51.282580123, 1.080466456, 10.25), Point(1563809650, 51.2826, 1.0805)]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ReferenceServer]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http, like the emulator
    async with running_reference_server() as srv:
        yield srv


def settings_for(server: ReferenceServer) -> ApiSettings:
    return ApiSettings(base_url=server.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       timeout_s=10.0)  # fmt: skip


async def play_browser(url: str) -> None:
    """What a browser does: follow the authorize redirect to the callback server."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()


async def do_login(server: ReferenceServer, store: TokenStore) -> dict[str, Any]:
    out = io.StringIO()
    return await login(settings_for(server), store, open_browser=False, port=0, out=out,
                       on_authorize_url=play_browser)  # fmt: skip


async def test_login_stores_a_pair_the_server_accepts(
    server: ReferenceServer, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path / "data")
    record = await do_login(server, store)
    assert record["access_token"] in server.validator.access
    assert record["refresh_token"] in server.validator.refresh
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    query = server.authorize_queries[0]
    assert query["redirect_url"] == query["redirect_uri"]
    assert query["redirect_uri"].startswith("http://127.0.0.1:")
    assert len(query["state"]) >= 20
    exchange = server.token_requests[0]
    assert exchange["grant_type"] == "authorization_code"
    assert "client_secret" not in exchange  # Basic auth, not in the body


async def test_every_endpoint_and_the_payload(server: ReferenceServer, tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(server, store)
    async with MapMyTracksClient(settings_for(server), store) as client:
        activity = await client.start_activity(
            title="Ride 1", activity_type="cycling", status="private", tags=["a", "b"],
            points=POINTS[:1], hr=[HeartRateSample(1563809643, 131)],
        )  # fmt: skip
        await client.update_activity(activity, POINTS[1:])
        await client.stop_activity(activity)
        uploaded = await client.upload_activity(
            gpx="<gpx/>", activity_type="cycling", status="public", title="Old ride"
        )
    assert uploaded != activity
    functions = [f for f, _ in server.requests]
    assert functions == ["startActivity", "updateActivity", "stopActivity", "uploadActivity"]
    start = server.requests[0][1]
    assert start["activity_title"] == "Ride 1"
    assert start["tags"] == "a,b"
    assert start["data"] == (
        '{"loc":[{"lat":51.28258,"lon":1.080466,"ele":10.2,"timestamp":1563809643,'
        '"unix_timestamp":1563809643}],"hr":[{"hr":131,"timestamp":1563809643,'
        '"unix_timestamp":1563809643}]}'
    )
    assert "hr" not in json.loads(server.requests[1][1]["data"])
    assert server.requests[3][1]["file"] == "<gpx/>"
    assert server.requests[3][1]["activity_name"] == "Old ride"


async def test_401_refreshes_once_rotates_and_persists(
    server: ReferenceServer, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    first = await do_login(server, store)
    server.expire_access_tokens()  # the server says expired; our clock does not know yet
    async with MapMyTracksClient(settings_for(server), store) as client:
        activity = await client.start_activity(
            title="R", activity_type="cycling", status="private", tags=(), points=POINTS[:1]
        )
        assert activity >= 1000
        assert client.oauth.refresh_count == 1
    stored = store.load_tokens()
    assert stored is not None
    assert stored["refresh_token"] != first["refresh_token"]  # rotated, and on disk
    assert first["refresh_token"] in server.validator.dead_refresh
    assert stored["refresh_token"] in server.validator.refresh
    assert stored["generation"] == first["generation"] + 1


async def test_proactive_refresh_on_a_fake_clock(server: ReferenceServer, tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(server, store)
    now = [10_000.0]
    async with MapMyTracksClient(
        settings_for(server), store, monotonic=lambda: now[0], clock=lambda: None
    ) as client:
        await client.stop_activity(1)  # a pair read from disk, no trusted clock: used as is
        assert client.oauth.refresh_count == 0
        assert client.token_seconds_left() is None
        server.expire_access_tokens()
        await client.stop_activity(1)  # 401 → refresh → retry; now the monotonic clock knows
        assert client.oauth.refresh_count == 1
        left = client.token_seconds_left()
        assert left == pytest.approx(3600)
        now[0] += 3600 - 30  # inside the leeway: refreshed before the request
        await client.stop_activity(1)
        assert client.oauth.refresh_count == 2


async def test_dead_refresh_token_means_login_needed(
    server: ReferenceServer, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    record = await do_login(server, store)
    server.validator.revoke_token(record["refresh_token"], "refresh_token", None)
    async with MapMyTracksClient(settings_for(server), store) as client:
        with pytest.raises(LoginNeededError) as caught:
            await client.stop_activity(1)
        assert client.login_needed
        assert record["refresh_token"] not in str(caught.value)
        # Calls fail fast while the login is needed...
        requests_before = len(server.token_requests)
        with pytest.raises(LoginNeededError):
            await client.stop_activity(1)
        assert len(server.token_requests) == requests_before
        assert (store.load() or {}).get("state") == "login_needed"
        # ...and a `tracker login` made meanwhile is picked up without a restart.
        await do_login(server, store)
        await client.stop_activity(1)
        assert not client.login_needed


async def test_lost_refresh_reply_is_the_documented_unrecoverable_window(
    server: ReferenceServer, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(server, store)
    server.expire_access_tokens()
    async with MapMyTracksClient(settings_for(server), store) as client:
        server.script = ["", "lost"]  # the 401'd call, then the refresh: applied, reply lost
        with pytest.raises(RetryableApiError):
            await client.stop_activity(1)
        with pytest.raises(LoginNeededError):
            await client.stop_activity(1)


async def test_logout_revokes_and_deletes(server: ReferenceServer, tmp_path: Path) -> None:
    store = TokenStore.in_dir(tmp_path)
    record = await do_login(server, store)
    was, _ = await logout(settings_for(server), store)
    assert was
    assert not store.path.exists()
    assert record["refresh_token"] not in server.validator.refresh
    assert record["access_token"] not in server.validator.access
    assert await logout(settings_for(server), store) == (False, "not logged in (no stored tokens)")


async def test_classification_of_429_and_a_401_that_survives_the_refresh(
    server: ReferenceServer, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    await do_login(server, store)
    async with MapMyTracksClient(settings_for(server), store) as client:
        server.script = ["429"]
        with pytest.raises(RetryableApiError) as limited:
            await client.stop_activity(1)
        assert limited.value.status == 429
        assert limited.value.retry_after == 7
        server.script = ["401", "", "401"]  # refused, refreshed fine, refused again
        with pytest.raises(AuthError, match="even after a refresh") as refused:
            await client.stop_activity(1)
        assert not isinstance(refused.value, LoginNeededError)
        assert client.oauth.refresh_count == 1
        await client.stop_activity(1)  # the refreshed pair is fine afterwards
