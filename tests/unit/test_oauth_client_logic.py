"""OAuth client logic that needs no server: expiry on good and bad clocks, error classes, URLs."""

from __future__ import annotations

import email.utils
from pathlib import Path

import aiohttp
import pytest

from tracker.errors import AuthError, ConfigError, PermanentApiError, RetryableApiError
from tracker.mmt.expiry import (
    MAX_CLOCK_SKEW_S,
    PLAUSIBLE_AFTER,
    Lifetime,
    leeway_for,
    system_clock,
)
from tracker.mmt.http import (
    Endpoints,
    Reply,
    check_base_url,
    classify_status,
    retry_after_seconds,
)
from tracker.mmt.keeper import TokenKeeper
from tracker.mmt.oauth import AiohttpOAuth2Client
from tracker.mmt.tokens import TokenStore

NOW = 1_800_000_000.0


class Clocks:
    def __init__(self, wall: float | None = NOW, mono: float = 100.0) -> None:
        self.wall = wall
        self.mono = mono


@pytest.fixture
async def make_client(tmp_path: Path):  # type: ignore[no-untyped-def]
    sessions: list[aiohttp.ClientSession] = []

    def make(clocks: Clocks) -> TokenKeeper:
        session = aiohttp.ClientSession()
        sessions.append(session)
        return TokenKeeper(session, base_url="https://example.org/api3", client_id="id",
                           client_secret="secret-0123456789", store=TokenStore.in_dir(tmp_path),
                           clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)  # fmt: skip

    yield make
    for session in sessions:
        await session.close()


def stored(store_dir: Path, **fields: object) -> None:
    TokenStore.in_dir(store_dir).save(
        {"access_token": "acc-logic-0000000", "refresh_token": "ref-logic-0000000",
         "token_type": "Bearer", "expires_in": 3600}, **fields,
    )  # fmt: skip


async def test_pair_from_disk_is_never_judged_on_a_wall_clock(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Changed by issue 14: a wall clock (GPS-derived or system) no longer decides a refresh;
    a pair this process did not receive is used until a 401."""
    stored(tmp_path, received_at=NOW - 1000, expires_at=NOW + 2600)
    clocks = Clocks()
    client = make_client(clocks)
    assert client.load_from_store()
    assert client.seconds_left() is None
    assert not client.needs_refresh()
    clocks.wall = NOW + 2600 - 59
    assert not client.needs_refresh()
    clocks.mono += 1e6
    assert not client.needs_refresh()


async def test_wrong_clock_means_refresh_on_401_only(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Stored while the clock was years ahead: the expiry is beyond the token's whole lifetime.
    stored(tmp_path, received_at=NOW + 9e7, expires_at=NOW + 9e7 + 3600)
    client = make_client(Clocks())
    client.load_from_store()
    assert client.seconds_left() is None
    assert not client.needs_refresh()


async def test_no_trusted_time_means_unknown_expiry(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stored(tmp_path, received_at=NOW, expires_at=NOW + 3600)
    client = make_client(Clocks(wall=None))
    client.load_from_store()
    assert client.seconds_left() is None


async def test_clock_far_ahead_refreshes_nothing(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Changed by issue 14 (was: refreshes once): with rotation, a needless refresh whose reply
    is lost logs the rider out, so a jumping wall clock must not cause one."""
    stored(tmp_path, received_at=NOW, expires_at=NOW + 3600)
    client = make_client(Clocks(wall=NOW + 9e7))
    client.load_from_store()
    assert not client.needs_refresh()


async def test_pair_received_in_process_uses_the_monotonic_clock(make_client) -> None:  # type: ignore[no-untyped-def]
    clocks = Clocks(wall=None, mono=500.0)
    client = make_client(clocks)
    client.policy.lifetime = Lifetime(expires_in=60.0, expires_at=None, mono_received=500.0)
    assert client.seconds_left() == 60
    clocks.wall = 0.0  # the wall clock jumps around: irrelevant
    clocks.mono = 544.0
    assert not client.needs_refresh()
    clocks.mono = 546.0  # 14 s left, the leeway is a quarter of 60 s
    assert client.needs_refresh()


def test_leeway_is_at_most_a_quarter_of_the_life() -> None:
    assert leeway_for(3600, 60) == 60
    assert leeway_for(30, 60) == 7.5
    assert leeway_for(None, 60) == 60


def test_system_clock_refuses_an_implausible_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 86400.0)  # 1970: a Pi without RTC after boot
    assert system_clock() is None
    monkeypatch.setattr("time.time", lambda: PLAUSIBLE_AFTER + 1)
    assert system_clock() == PLAUSIBLE_AFTER + 1
    assert MAX_CLOCK_SKEW_S > 0


def reply(status: int, body: bytes = b"", **headers: str) -> Reply:
    return Reply(status, headers, body, "startActivity")


def test_classification() -> None:
    err = classify_status(reply(429, b"{}", **{"Retry-After": "17"}))
    assert isinstance(err, RetryableApiError)
    assert err.retry_after == 17
    assert err.status == 429
    assert isinstance(classify_status(reply(502, b"<html>bad gateway</html>")), RetryableApiError)
    assert isinstance(classify_status(reply(401)), AuthError)
    assert isinstance(classify_status(reply(302)), RetryableApiError)
    perm = classify_status(reply(403, b'{"function":"x","error":"INVALID_PARAMENTER",'
                                      b'"message":"bad lat"}'))  # fmt: skip
    assert isinstance(perm, PermanentApiError)
    assert "INVALID_PARAMENTER: bad lat" in str(perm)
    assert isinstance(classify_status(reply(404)), PermanentApiError)


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert retry_after_seconds(date, now=NOW) == pytest.approx(30)
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_endpoints() -> None:
    ep = Endpoints.from_base("https://www.mapmytracks.com/api3/")
    assert ep.token == "https://www.mapmytracks.com/api3/oauth/token"
    assert ep.authorize == "https://www.mapmytracks.com/api3/oauth/authorize"
    assert ep.revoke == "https://www.mapmytracks.com/api3/oauth/revoke"
    assert ep.api("startActivity") == "https://www.mapmytracks.com/api3/startActivity"


@pytest.mark.parametrize("url", ["http://mapmytracks.com/api3", "http://192.168.1.2/api3",
                                 "https:///nohost", "file:///etc/passwd"])  # fmt: skip
def test_plain_http_refused_off_loopback(url: str) -> None:
    with pytest.raises(ConfigError):
        check_base_url(url)


async def test_missing_client_credentials_is_a_config_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match="client_id and client_secret"):
            AiohttpOAuth2Client(session, base_url="https://x.org/api3", client_id="",
                                client_secret="")  # fmt: skip


def test_no_console_browser_on_a_headless_pi(monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.mmt.login import graphical_session

    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not graphical_session()
    monkeypatch.setenv("DISPLAY", ":0")
    assert graphical_session()
