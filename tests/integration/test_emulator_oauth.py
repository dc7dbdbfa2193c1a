"""OAuth contract tests against a real emulator server, with a plain aiohttp client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tracker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, EmulatorHandle, running_emulator

REDIRECT = "http://127.0.0.1:8765/callback"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(clock=clock, token_ttl=60) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def basic(client_id: str = DEMO_CLIENT_ID, secret: str = DEMO_CLIENT_SECRET) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def get_code(
    http: aiohttp.ClientSession, emu: EmulatorHandle, *, redirect: str = REDIRECT,
    state: str = "s1", param: str = "both",
) -> str:
    params = {"client_id": emu.client_id, "response_type": "code", "state": state}
    if param in ("both", "redirect_url"):
        params["redirect_url"] = redirect
    if param in ("both", "redirect_uri"):
        params["redirect_uri"] = redirect
    async with http.get(emu.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return query["code"][0]


async def exchange(
    http: aiohttp.ClientSession, emu: EmulatorHandle, code: str, *,
    headers: dict[str, str] | None = None, redirect: str = REDIRECT,
    extra: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    form.update(extra or {})
    async with http.post(emu.token_url, data=form,
                         headers=basic() if headers is None else headers) as r:
        return r.status, await r.json()


async def refresh(
    http: aiohttp.ClientSession, emu: EmulatorHandle, refresh_token: str
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    async with http.post(emu.token_url, data=form, headers=basic()) as r:
        return r.status, await r.json()


async def stop_status(http: aiohttp.ClientSession, emu: EmulatorHandle, access: str) -> int:
    """Any authenticated call: 403 (unknown activity) means the token was accepted."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("activity_id", "1")
    async with http.post(f"{emu.base_url}/stopActivity", data=form,
                         headers={"Authorization": f"Bearer {access}"}) as r:
        return r.status


async def test_code_flow_with_redirect_url_only_issues_a_bearer_pair(emu, http):
    code = await get_code(http, emu, param="redirect_url")
    status, token = await exchange(http, emu, code)
    assert status == 200
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 60
    assert token["access_token"]
    assert token["refresh_token"]
    assert await stop_status(http, emu, token["access_token"]) == 403


async def test_redirect_uri_only_is_accepted_too(emu, http):
    code = await get_code(http, emu, param="redirect_uri")
    assert (await exchange(http, emu, code))[0] == 200


async def test_client_secret_post_is_accepted(emu, http):
    code = await get_code(http, emu)
    status, _ = await exchange(http, emu, code, headers={}, extra={
        "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET})
    assert status == 200


async def test_code_is_single_use_and_reuse_revokes_its_tokens(emu, http):
    code = await get_code(http, emu)
    status, token = await exchange(http, emu, code)
    assert status == 200
    status, body = await exchange(http, emu, code)
    assert (status, body["error"]) == (400, "invalid_grant")
    # RFC 6749 §4.1.2: the tokens issued from the reused code are revoked.
    assert await stop_status(http, emu, token["access_token"]) == 401
    assert (await refresh(http, emu, token["refresh_token"]))[1]["error"] == "invalid_grant"


async def test_wrong_secret_is_401_and_does_not_burn_the_code(emu, http):
    code = await get_code(http, emu)
    status, body = await exchange(http, emu, code, headers=basic(secret="wrong"))
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = await exchange(http, emu, code, headers={})
    assert (status, body["error"]) == (401, "invalid_client")
    assert (await exchange(http, emu, code))[0] == 200


async def test_redirect_mismatch_at_exchange_is_invalid_grant(emu, http):
    code = await get_code(http, emu)
    status, body = await exchange(http, emu, code, redirect="http://127.0.0.1:8765/other")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_authorize_rejects_foreign_redirect_and_unknown_client(emu, http):
    params = {"client_id": emu.client_id, "response_type": "code",
              "redirect_uri": "https://evil.example/cb", "state": "s"}
    async with http.get(emu.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "invalid_request"
    params.update(client_id="nobody", redirect_uri=REDIRECT)
    async with http.get(emu.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status in (400, 401)
        assert (await r.json())["error"] == "invalid_client"
    params.update(client_id=emu.client_id, redirect_url="http://127.0.0.1:1/x")
    async with http.get(emu.authorize_url, params=params, allow_redirects=False) as r:
        assert r.status == 400  # redirect_url and redirect_uri differ


async def test_localhost_any_port_and_path_is_a_valid_redirect(emu, http):
    code = await get_code(http, emu, redirect="http://localhost:40001/some/path")
    assert (await exchange(http, emu, code, redirect="http://localhost:40001/some/path"))[0] == 200


async def test_configured_non_loopback_redirect_is_accepted():
    async with running_emulator(redirect_uris=("https://app.example/cb",)) as emu, \
            aiohttp.ClientSession() as http:
        code = await get_code(http, emu, redirect="https://app.example/cb")
        assert (await exchange(http, emu, code, redirect="https://app.example/cb"))[0] == 200


async def test_refresh_rotates_and_the_old_refresh_token_dies(emu, http):
    _, first = await exchange(http, emu, await get_code(http, emu))
    status, second = await refresh(http, emu, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    status, body = await refresh(http, emu, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await refresh(http, emu, second["refresh_token"]))[0] == 200


async def test_access_token_expires_on_the_emulator_clock(emu, http, clock):
    _, token = await exchange(http, emu, await get_code(http, emu))
    clock.now += 59
    assert await stop_status(http, emu, token["access_token"]) == 403
    clock.now += 1
    assert await stop_status(http, emu, token["access_token"]) == 401
    status, fresh = await refresh(http, emu, token["refresh_token"])
    assert status == 200
    assert await stop_status(http, emu, fresh["access_token"]) == 403


async def test_clock_can_be_advanced_over_http(emu, http):
    _, token = await exchange(http, emu, await get_code(http, emu))
    async with http.post(f"{emu.root_url}/_emulator/clock", json={"advance": 61}) as r:
        assert r.status == 200
    assert await stop_status(http, emu, token["access_token"]) == 401


async def test_revoking_refresh_token_revokes_the_grant(emu, http):
    _, token = await exchange(http, emu, await get_code(http, emu))
    async with http.post(emu.revoke_url, headers=basic(), data={
            "token": token["refresh_token"], "token_type_hint": "refresh_token"}) as r:
        assert r.status == 200
    assert await stop_status(http, emu, token["access_token"]) == 401
    assert (await refresh(http, emu, token["refresh_token"]))[1]["error"] == "invalid_grant"


async def test_revoking_access_token_keeps_refresh_usable(emu, http):
    _, token = await exchange(http, emu, await get_code(http, emu))
    async with http.post(emu.revoke_url, data={"token": token["access_token"]}) as r:
        assert r.status == 200  # no client credentials at all is accepted too
    assert await stop_status(http, emu, token["access_token"]) == 401
    status, fresh = await refresh(http, emu, token["refresh_token"])
    assert status == 200
    assert await stop_status(http, emu, fresh["access_token"]) == 403


async def test_revoke_with_wrong_credentials_is_401(emu, http):
    _, token = await exchange(http, emu, await get_code(http, emu))
    async with http.post(emu.revoke_url, headers=basic(secret="nope"),
                         data={"token": token["access_token"]}) as r:
        assert r.status == 401
    assert await stop_status(http, emu, token["access_token"]) == 403


async def test_revoke_unknown_token_is_200_per_rfc7009(emu, http):
    async with http.post(emu.revoke_url, headers=basic(), data={"token": "nonsense"}) as r:
        assert r.status == 200


async def test_approve_page_without_auto_approve():
    async with running_emulator(auto_approve=False) as emu, aiohttp.ClientSession() as http:
        params = {"client_id": emu.client_id, "response_type": "code",
                  "redirect_url": REDIRECT, "state": "abc"}
        async with http.get(emu.authorize_url, params=params, allow_redirects=False) as r:
            assert r.status == 200
            page = await r.text()
        assert "Approve" in page
        async with http.post(emu.authorize_url, params=params, allow_redirects=False) as r:
            assert r.status == 302
            query = parse_qs(urlsplit(r.headers["Location"]).query)
        assert query["state"] == ["abc"]
        assert (await exchange(http, emu, query["code"][0]))[0] == 200


async def test_custom_client_credentials():
    async with running_emulator(client_id="mine", client_secret="s3cret") as emu, \
            aiohttp.ClientSession() as http:
        assert (emu.client_id, emu.client_secret) == ("mine", "s3cret")
        code = await get_code(http, emu)
        status, _ = await exchange(http, emu, code, headers=basic("mine", "s3cret"))
        assert status == 200


async def test_unsupported_grant_type(emu, http):
    async with http.post(emu.token_url, headers=basic(),
                         data={"grant_type": "password", "username": "x"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "unsupported_grant_type"


async def test_no_token_code_or_secret_reaches_the_log(http):
    import io
    import logging

    from tracker.logs import configure_logging

    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)  # the worst case: every library's debug lines too
    try:
        async with running_emulator(client_secret="very-secret-value-42") as emu:
            creds = basic(secret="very-secret-value-42")
            code = await get_code(http, emu)
            status, token = await exchange(http, emu, code, headers=creds)
            assert status == 200
            form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
            async with http.post(emu.token_url, data=form, headers=creds) as r:
                fresh = await r.json()
            await exchange(http, emu, code, headers=creds)  # reuse: logged, grant revoked
            await stop_status(http, emu, token["access_token"])  # 401, logged
            emu.set_faults(lost_reply_rate=1.0)
            with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
                await stop_status(http, emu, fresh["access_token"])
            emu.set_faults(lost_reply_rate=0.0)
            await stop_status(http, emu, fresh["access_token"])
    finally:
        root.setLevel(old_level)
        configure_logging("info")
    text = stream.getvalue()
    assert "token request rejected" in text
    assert "authorization code used twice" in text
    for secret in (code, token["access_token"], token["refresh_token"], fresh["access_token"],
                   fresh["refresh_token"], "very-secret-value-42"):
        assert secret not in text


async def test_lost_reply_on_refresh_logs_the_client_out(emu, http):
    """The contract's warning, reproduced: the rotation happened, the reply never came."""
    _, token = await exchange(http, emu, await get_code(http, emu))
    emu.set_faults(lost_reply_rate=1.0)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await refresh(http, emu, token["refresh_token"])
    emu.set_faults(lost_reply_rate=0.0)
    status, body = await refresh(http, emu, token["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_repeated_authorize_parameter_is_refused(emu, http):
    url = (f"{emu.authorize_url}?client_id={emu.client_id}&response_type=code"
           f"&redirect_uri={REDIRECT}&state=a&state=b")
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 400
        assert "state" in (await r.json())["error_description"]


async def test_token_reply_is_not_cacheable(emu, http):
    code = await get_code(http, emu)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    async with http.post(emu.token_url, data=form, headers=basic()) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"


async def test_token_body_that_is_not_utf8_is_invalid_request(emu, http):
    async with http.post(emu.token_url, data=b"\xff\xfe", headers={
            **basic(), "Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "invalid_request"
