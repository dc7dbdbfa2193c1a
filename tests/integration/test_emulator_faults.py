"""Every fault, seen by a plain aiohttp client against a real emulator server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tracker.emulator import EmulatorHandle, FaultError, running_emulator

T0 = 1_763_809_643
NO_REPLY = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class RecordingSleep:
    """Latency without waiting: records what the emulator asked to sleep."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def start_form(title: str, *timestamps: int) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("status", "private")
    form.add_field("activity_title", title)
    form.add_field("data", json.dumps({"loc": [
        {"lat": 51.0, "lon": 1.0, "timestamp": t, "unix_timestamp": t} for t in timestamps]}))
    return form


def update_form(activity_id: int, *timestamps: int) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("activity_id", str(activity_id))
    form.add_field("data", json.dumps({"loc": [
        {"lat": 51.0, "lon": 1.0, "timestamp": t, "unix_timestamp": t} for t in timestamps]}))
    return form


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def emu(sleep: RecordingSleep) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(sleep=sleep) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A fresh connection per request: a closed keep-alive connection must not blur the faults.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


def bearer(emu: EmulatorHandle) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.issue_tokens()['access_token']}"}


async def post(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, **kw) as r:
        return r.status, await r.json()


async def test_lost_reply_applies_the_request_then_closes_without_reply(emu, http):
    headers = bearer(emu)
    emu.set_faults(lost_reply_rate=1.0)
    with pytest.raises(NO_REPLY):
        await post(http, f"{emu.base_url}/startActivity", data=start_form("Lost", T0),
                   headers=headers)
    [activity] = emu.activities
    assert [p.timestamp for p in activity.points] == [T0]  # applied
    assert activity.requests[("startActivity", "lost_reply")] == 1
    emu.set_faults(lost_reply_rate=0.0)
    # The client retries with the same title: same activity, counted as a duplicate.
    status, body = await post(http, f"{emu.base_url}/startActivity",
                              data=start_form("Lost", T0), headers=headers)
    assert (status, body["activity_id"]) == (200, activity.id)
    assert activity.duplicates == 1


async def test_lost_reply_on_update_then_retry_is_a_duplicate(emu, http):
    headers = bearer(emu)
    _, body = await post(http, f"{emu.base_url}/startActivity", data=start_form("U", T0),
                         headers=headers)
    aid = body["activity_id"]
    emu.set_faults(lost_reply_rate=1.0)
    with pytest.raises(NO_REPLY):
        await post(http, f"{emu.base_url}/updateActivity", data=update_form(aid, T0 + 1),
                   headers=headers)
    emu.set_faults(lost_reply_rate=0.0)
    assert (await post(http, f"{emu.base_url}/updateActivity",
                       data=update_form(aid, T0 + 1, T0 + 2), headers=headers))[0] == 200
    activity = emu.activity(aid)
    assert [p.timestamp for p in activity.points] == [T0, T0 + 1, T0 + 2]
    assert activity.duplicates == 1


async def test_drop_closes_before_applying(emu, http):
    headers = bearer(emu)
    emu.set_faults(drop_rate=1.0)
    with pytest.raises(NO_REPLY):
        await post(http, f"{emu.base_url}/startActivity", data=start_form("Drop", T0),
                   headers=headers)
    assert emu.activities == []
    assert emu.request_counts()["startActivity"] == {"dropped": 1}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_error_rate_answers_5xx_without_applying(emu, http, seed):
    headers = bearer(emu)
    emu.set_faults(error_rate=1.0, seed=seed)
    statuses = set()
    for i in range(12):
        status, body = await post(http, f"{emu.base_url}/startActivity",
                                  data=start_form(f"E{i}", T0), headers=headers)
        statuses.add(status)
        assert body["function"] == "startActivity"
    assert statuses <= {500, 502, 503}
    assert len(statuses) >= 2
    assert emu.activities == []


async def test_down_closes_every_api_connection_but_not_inspection(emu, http):
    headers = bearer(emu)
    async with http.post(f"{emu.root_url}/_emulator/faults", json={"down": True}) as r:
        settings = await r.json()
    assert settings["down"] is True
    for url, kw in ((f"{emu.base_url}/startActivity",
                     {"data": start_form("Down", T0), "headers": headers}),
                    (emu.token_url, {"data": {"grant_type": "refresh_token"}})):
        with pytest.raises(NO_REPLY):
            await post(http, url, **kw)
    async with http.get(f"{emu.root_url}/_emulator/activities") as r:
        assert r.status == 200
    async with http.post(f"{emu.root_url}/_emulator/faults", json={"down": False}) as r:
        assert (await r.json())["down"] is False
    assert (await post(http, f"{emu.base_url}/startActivity", data=start_form("Up", T0),
                       headers=headers))[0] == 200


async def test_faults_apply_to_oauth_too(emu, http):
    emu.set_faults(error_rate=1.0, seed=4)
    async with http.post(emu.token_url, data={"grant_type": "refresh_token",
                                              "refresh_token": "x"}) as r:
        assert r.status in (500, 502, 503)


async def test_latency_waits_before_each_api_request_only(emu, http, sleep):
    headers = bearer(emu)
    emu.set_faults(latency=0.25)
    await post(http, f"{emu.base_url}/startActivity", data=start_form("L", T0), headers=headers)
    async with http.get(f"{emu.root_url}/_emulator/activities") as r:
        assert r.status == 200
    assert sleep.calls == [0.25]


async def test_real_latency_is_really_waited():
    # The only real sleep in the suite: 10 ms, proving the default sleep is wired.
    async with running_emulator(faults="latency=0.01") as emu, \
            aiohttp.ClientSession() as http, http.post(f"{emu.base_url}/stopActivity") as r:
        assert r.status == 401


async def test_seeded_faults_repeat_exactly(http):
    outcomes: list[list[str]] = []
    for _ in range(2):
        async with running_emulator(
                faults="error_rate=0.3,drop_rate=0.2,lost_reply_rate=0.2,seed=2") as emu:
            headers = bearer(emu)
            run: list[str] = []
            for i in range(15):
                try:
                    status, _ = await post(http, f"{emu.base_url}/startActivity",
                                           data=start_form(f"S{i}", T0), headers=headers)
                    run.append(str(status))
                except NO_REPLY:
                    run.append("closed")
            outcomes.append(run)
            counts = emu.request_counts()["startActivity"]
            # Applied = answered 200 + lost replies; errors and drops stored nothing.
            assert len(emu.activities) == counts.get("ok", 0) == \
                run.count("200") + counts.get("lost_reply", 0)
    assert outcomes[0] == outcomes[1]
    assert {"200", "closed"} <= set(outcomes[0])


async def test_fault_endpoint_merges_and_validates(emu, http):
    async with http.post(f"{emu.root_url}/_emulator/faults", json={"latency": 0.5}) as r:
        assert (await r.json())["latency"] == 0.5
    async with http.post(f"{emu.root_url}/_emulator/faults", json={"error_rate": 0.1}) as r:
        merged = await r.json()
    assert (merged["latency"], merged["error_rate"]) == (0.5, 0.1)
    for bad in ({"nonsense": 1}, {"error_rate": 2}, {"down": "maybe"}, [1]):
        async with http.post(f"{emu.root_url}/_emulator/faults", json=bad) as r:
            assert r.status == 400
            assert (await r.json())["error"]
    async with http.get(f"{emu.root_url}/_emulator/faults") as r:
        assert (await r.json()) == merged


async def test_token_ttl_fault_shortens_new_tokens(emu):
    emu.set_faults(token_ttl=30)
    assert emu.issue_tokens()["expires_in"] == 30


def test_bad_fault_spec_is_refused():
    from tracker.emulator import faults_from

    assert faults_from("latency=0.2, seed=7").seed == 7
    for spec in ("latency", "latency=-1", "error_rate=0.6,drop_rate=0.6", "token_ttl=0.5",
                 "color=red"):
        with pytest.raises(FaultError):
            faults_from(spec)
