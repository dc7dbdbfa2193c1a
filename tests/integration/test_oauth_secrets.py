"""No secret in any log line or exception message, on every error path of login, refresh, calls
and logout.

Each scenario below ends in an error (or logs one). The logs of the whole test are captured as
JSON lines and as console text; every exception is kept with its whole chain (``__cause__``,
``__context__``) and its ``repr``. Then neither may contain any access token, refresh token,
authorization code or the client secret seen during the test.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.integration.oauth_reference_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    ReferenceServer,
    running_reference_server,
)
from tracker.config import ApiSettings
from tracker.emulator import EmulatorHandle, running_emulator
from tracker.errors import TrackerError
from tracker.logs import configure_logging
from tracker.mmt.client import MapMyTracksClient
from tracker.mmt.login import login, logout
from tracker.mmt.oauth import AiohttpOAuth2Client
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

POINT = Point(1_700_000_000, 51.0, 0.0, 5.0)


class Seen:
    """Every secret that went by, and every error raised."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.errors: list[BaseException] = []
        self.codes: list[str] = []

    def tokens_from(self, store: TokenStore) -> None:
        record = store.load() or {}
        for key in ("access_token", "refresh_token"):
            if record.get(key):
                self.secrets.add(record[key])

    async def expect_error(self, action: Awaitable[Any]) -> None:
        try:
            await action
        except (TrackerError, ValueError) as exc:
            self.errors.append(exc)
        else:
            pytest.fail("the scenario was meant to fail")


def chain_text(exc: BaseException) -> str:
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(getattr(current, "args", ()))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@pytest.fixture
def logs() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    return stream  # tests/conftest.py puts the previous configuration back afterwards


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True) as emu:
        yield emu


def settings_for(base_url: str, client_id: str, secret: str) -> ApiSettings:
    return ApiSettings(base_url=base_url, client_id=client_id, client_secret=secret, timeout_s=5.0)


def browser_recording_codes(seen: Seen) -> Callable[[str], Awaitable[None]]:
    async def browser(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, allow_redirects=False) as resp:
                location = resp.headers["Location"]
            codes = parse_qs(urlsplit(location).query).get("code", [])
            seen.codes += codes
            seen.secrets.update(codes)
            async with session.get(location) as resp:
                await resp.read()

    return browser


async def test_no_secret_in_logs_or_errors_on_any_path(
    emulator: EmulatorHandle, logs: io.StringIO, tmp_path: Path
) -> None:
    seen = Seen()
    seen.secrets.add(emulator.client_secret)
    settings = settings_for(emulator.base_url, emulator.client_id, emulator.client_secret)
    store = TokenStore.in_dir(tmp_path)
    browser = browser_recording_codes(seen)

    async def do_login() -> None:
        await login(settings, store, open_browser=False, port=0, out=io.StringIO(),
                    on_authorize_url=browser)  # fmt: skip
        seen.tokens_from(store)

    await do_login()
    async with MapMyTracksClient(settings, store) as client:
        activity = await client.start_activity(
            title="S", activity_type="cycling", status="private", tags=(), points=[POINT]
        )
        # 403 with the server's message
        await seen.expect_error(client.update_activity(activity + 999, [POINT]))
        # 5xx, dropped connection, lost reply, outage: on the calls...
        for fault in ({"error_rate": 1.0}, {"drop_rate": 1.0}, {"lost_reply_rate": 1.0},
                      {"down": True}):  # fmt: skip
            emulator.set_faults(**fault)
            await seen.expect_error(client.stop_activity(activity))
            # ...and on the token endpoint (a forced refresh)
            current = client.oauth.token["access_token"]
            await seen.expect_error(client.oauth.ensure_active_token(failed_access_token=current))
            emulator.set_faults(error_rate=0.0, drop_rate=0.0, lost_reply_rate=0.0, down=False)
            seen.tokens_from(store)
        # After the lost refresh reply the stored refresh token is dead: invalid_grant.
        current = client.oauth.token["access_token"]
        await seen.expect_error(client.oauth.ensure_active_token(failed_access_token=current))
        await seen.expect_error(client.stop_activity(activity))  # login needed, at once
    seen.tokens_from(store)

    # invalid_client: a wrong secret in the configuration
    await do_login()
    wrong = settings_for(emulator.base_url, emulator.client_id, "wrong-secret-abcdefgh")
    seen.secrets.add("wrong-secret-abcdefgh")
    async with MapMyTracksClient(wrong, store) as client:
        current = client.oauth.token["access_token"]
        await seen.expect_error(client.oauth.ensure_active_token(failed_access_token=current))
    # A reused authorization code: replay the last one at the token endpoint.
    async with aiohttp.ClientSession() as session:
        oauth = AiohttpOAuth2Client(session, base_url=emulator.base_url,
                                    client_id=emulator.client_id,
                                    client_secret=emulator.client_secret,
                                    redirect_uri="http://127.0.0.1:1/callback")  # fmt: skip
        await seen.expect_error(oauth.fetch_token(
            oauth.endpoints.token, code=seen.codes[0], grant_type="authorization_code"
        ))  # fmt: skip
    # logout against a server that is down, then a login refused by the user
    emulator.set_faults(down=True)
    await seen.expect_error(logout(settings, store))
    emulator.set_faults(down=False)
    await seen.expect_error(login(settings, store, open_browser=False, port=0, out=io.StringIO(),
                                  timeout_s=0.01))  # fmt: skip
    # A 401 that survives the refresh (second-opinion server scripted to refuse twice).
    await reference_server_paths(seen, tmp_path / "ref")

    text = logs.getvalue()
    assert "login needed" in text  # the log was really captured
    assert len(seen.errors) >= 14
    assert len(seen.secrets) >= 8
    for exc in seen.errors:
        message = chain_text(exc)
        for secret in seen.secrets:
            assert secret not in message, f"{type(exc).__name__} leaks a secret"
    for secret in seen.secrets:
        assert secret not in text, "a log line leaks a secret"


async def reference_server_paths(seen: Seen, data_dir: Path) -> None:
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        async with running_reference_server() as server:
            await _reference_401_twice(seen, server, data_dir)
    finally:
        del os.environ["OAUTHLIB_INSECURE_TRANSPORT"]


async def _reference_401_twice(seen: Seen, server: ReferenceServer, data_dir: Path) -> None:
    settings = settings_for(server.base_url, CLIENT_ID, CLIENT_SECRET)
    seen.secrets.add(CLIENT_SECRET)
    store = TokenStore.in_dir(data_dir)
    await login(settings, store, open_browser=False, port=0, out=io.StringIO(),
                on_authorize_url=browser_recording_codes(seen))  # fmt: skip
    seen.tokens_from(store)
    async with MapMyTracksClient(settings, store) as client:
        server.script = ["401", "", "401"]
        await seen.expect_error(client.stop_activity(1))
        seen.tokens_from(store)
        server.script = ["429"]
        await seen.expect_error(client.stop_activity(1))
