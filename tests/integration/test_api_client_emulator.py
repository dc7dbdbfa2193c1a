"""MapMyTracksClient against the emulator: every endpoint, and every failure classified right.

Tokens are obtained with a real login (auto-approve) once per test; faults are switched on and
off around single calls, so each failure kind is exercised deterministically.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import gpxpy
import pytest

from tracker.config import ApiSettings
from tracker.emulator import EmulatorHandle, running_emulator
from tracker.errors import (
    ConfigError,
    LoginNeededError,
    PermanentApiError,
    RetryableApiError,
)
from tracker.mmt.client import MapMyTracksClient, encode_data
from tracker.mmt.gpx import build_gpx
from tracker.mmt.login import login
from tracker.mmt.tokens import TokenStore
from tracker.model import HeartRateSample, Point

from .engine_support import api_settings

T0 = 1_700_000_000
POINTS = [Point(T0 + i, 51.5 + i * 1e-4, -0.12 - i * 1e-4, 10.0 + i) for i in range(5)]


class Gate:
    """An emulator ``sleep`` that never returns until opened: a server that does not answer."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        await self.opened.wait()


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@pytest.fixture
async def emulator(gate: Gate) -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True, sleep=gate) as emu:
        yield emu


async def play_browser(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200


@pytest.fixture
async def store(emulator: EmulatorHandle, tmp_path: Path) -> TokenStore:
    token_store = TokenStore.in_dir(tmp_path)
    await login(api_settings(emulator), token_store, open_browser=False, port=0,
                out=io.StringIO(), on_authorize_url=play_browser)  # fmt: skip
    return token_store


@pytest.fixture
async def client(
    emulator: EmulatorHandle, store: TokenStore
) -> AsyncIterator[MapMyTracksClient]:
    async with MapMyTracksClient(api_settings(emulator), store) as api:
        yield api


async def start(client: MapMyTracksClient, title: str = "Ride") -> int:
    return await client.start_activity(
        title=title, activity_type="cycling", status="private", tags=["test"], points=POINTS[:2],
        hr=[HeartRateSample(T0, 120), HeartRateSample(T0 + 1, 121)],
    )  # fmt: skip


async def test_every_endpoint(client: MapMyTracksClient, emulator: EmulatorHandle) -> None:
    activity = await start(client)
    await client.update_activity(activity, POINTS[2:4])
    await client.update_activity(activity, POINTS[4:], [HeartRateSample(T0 + 4, 125)])
    await client.stop_activity(activity)
    await client.stop_activity(activity)  # a retried stop is fine
    stored = emulator.activity(activity)
    assert stored.title == "Ride"
    assert stored.state == "stopped"
    assert [p.timestamp for p in stored.points] == [p.timestamp for p in POINTS]
    assert [s.hr for s in stored.hr] == [120, 121, 125]
    gpx = build_gpx(POINTS, "Offline ride")
    uploaded = await client.upload_activity(gpx=gpx, activity_type="cycling", status="public",
                                            title="Offline ride")  # fmt: skip
    assert uploaded != activity
    assert emulator.activity(uploaded).state == "uploaded"
    assert len(emulator.activity(uploaded).points) == len(POINTS)


async def test_a_retried_start_resumes_the_same_activity(client: MapMyTracksClient) -> None:
    first = await start(client, "Same title")
    assert await start(client, "Same title") == first


def test_payload_is_compact_and_rounded() -> None:
    data = encode_data([Point(T0, 51.123456789, -0.000000449, 10.06)], [])
    assert data == (
        f'{{"loc":[{{"lat":51.123457,"lon":-0.0,"ele":10.1,"timestamp":{T0},'
        f'"unix_timestamp":{T0}}}]}}'
    )
    assert '"hr"' not in data
    no_ele = encode_data([Point(T0, 1.0, 2.0)], [HeartRateSample(T0, 99)])
    assert no_ele == (
        f'{{"loc":[{{"lat":1.0,"lon":2.0,"timestamp":{T0},"unix_timestamp":{T0}}}],'
        f'"hr":[{{"hr":99,"timestamp":{T0},"unix_timestamp":{T0}}}]}}'
    )


def test_gpx_round_trips_through_gpxpy() -> None:
    parsed = gpxpy.parse(build_gpx(POINTS, "Round trip"))
    track_points = parsed.tracks[0].segments[0].points
    assert parsed.name == "Round trip"
    assert [int(p.time.timestamp()) for p in track_points] == [p.timestamp for p in POINTS]
    assert track_points[1].latitude == pytest.approx(POINTS[1].lat, abs=1e-6)


async def test_403_is_permanent_with_the_servers_message(client: MapMyTracksClient) -> None:
    with pytest.raises(PermanentApiError) as caught:
        await client.update_activity(987654321, POINTS[:1])
    assert caught.value.status == 403
    assert not caught.value.retryable
    assert "INVALID_PARAMENTER" in str(caught.value)


async def test_5xx_is_retryable(client: MapMyTracksClient, emulator: EmulatorHandle) -> None:
    emulator.set_faults(error_rate=1.0, seed=1)
    with pytest.raises(RetryableApiError) as caught:
        await start(client)
    assert caught.value.status in (500, 502, 503)
    emulator.set_faults(error_rate=0.0)
    assert emulator.activities == []  # a 5xx applied nothing
    await start(client)


async def test_dropped_connection_is_retryable(
    client: MapMyTracksClient, emulator: EmulatorHandle
) -> None:
    emulator.set_faults(drop_rate=1.0, seed=1)
    with pytest.raises(RetryableApiError, match="closed the connection"):
        await start(client)
    emulator.set_faults(drop_rate=0.0)
    assert emulator.activities == []


async def test_lost_reply_is_retryable_and_the_retry_is_idempotent(
    client: MapMyTracksClient, emulator: EmulatorHandle
) -> None:
    emulator.set_faults(lost_reply_rate=1.0, seed=1)
    with pytest.raises(RetryableApiError):
        await start(client, "Lost")
    emulator.set_faults(lost_reply_rate=0.0)
    applied = emulator.activity_by_title("Lost")
    assert applied is not None  # the server did apply it
    activity = await start(client, "Lost")  # the retry with the same title finds it
    assert activity == applied.id
    assert emulator.activity(activity).duplicates == 2


async def test_outage_is_retryable(client: MapMyTracksClient, emulator: EmulatorHandle) -> None:
    emulator.set_faults(down=True)
    with pytest.raises(RetryableApiError):
        await start(client)
    emulator.set_faults(down=False)
    await start(client)


async def test_a_server_that_does_not_answer_times_out_as_retryable(
    client: MapMyTracksClient, emulator: EmulatorHandle, gate: Gate
) -> None:
    emulator.set_faults(latency=5.0)  # the gate holds every request until opened
    client.oauth.timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(RetryableApiError, match="no reply within"):
        await start(client)
    gate.opened.set()


async def test_nobody_listening_is_retryable(store: TokenStore) -> None:
    settings = ApiSettings(base_url="http://127.0.0.1:9/api3", client_id="c",
                           client_secret="secret-secret")  # fmt: skip
    async with MapMyTracksClient(settings, store) as api:
        with pytest.raises(RetryableApiError, match="cannot connect"):
            await api.stop_activity(1)


async def test_no_tokens_is_login_needed_without_network(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    async with MapMyTracksClient(api_settings(emulator), TokenStore.in_dir(tmp_path)) as api:
        assert api.login_needed
        with pytest.raises(LoginNeededError, match="tracker login"):
            await api.stop_activity(1)
    assert emulator.request_counts() == {} or all(
        not counts for counts in emulator.request_counts().values()
    )


@pytest.mark.parametrize(
    "url",
    ["http://example.com/api3", "ftp://127.0.0.1/api3", "http://10.0.0.1/api3",
     "http://127.0.0.1.example.com/api3"],
)  # fmt: skip
def test_https_is_required_except_on_loopback(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https"):
        MapMyTracksClient(ApiSettings(base_url=url), TokenStore.in_dir(tmp_path))


@pytest.mark.parametrize(
    "url",
    ["https://www.mapmytracks.com/api3/", "http://127.0.0.1:8080/api3", "http://127.8.9.10/api3",
     "http://[::1]:8080/api3", "http://localhost:8080/api3"],
)  # fmt: skip
def test_https_or_loopback_is_accepted(url: str, tmp_path: Path) -> None:
    MapMyTracksClient(ApiSettings(base_url=url), TokenStore.in_dir(tmp_path))


async def test_one_keep_alive_connection_is_reused(
    emulator: EmulatorHandle, store: TokenStore
) -> None:
    created: list[object] = []
    reused: list[object] = []
    trace = aiohttp.TraceConfig()

    async def on_create(session: object, ctx: object, params: object) -> None:
        created.append(params)

    async def on_reuse(session: object, ctx: object, params: object) -> None:
        reused.append(params)

    trace.on_connection_create_end.append(on_create)
    trace.on_connection_reuseconn.append(on_reuse)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        MapMyTracksClient(api_settings(emulator), store, session=session) as api,
    ):
        activity = await start(api)
        for i in range(5):
            await api.update_activity(activity, [Point(T0 + 10 + i, 51.6, -0.1)])
        assert not session.closed
    assert len(created) == 1
    assert len(reused) == 5


async def test_a_damaged_token_file_means_login_needed(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    store = TokenStore.in_dir(tmp_path)
    store.path.write_text('{"version": 1, "state": "logged_in", "access_tok')
    async with MapMyTracksClient(api_settings(emulator), store) as api:
        assert api.login_needed
        with pytest.raises(LoginNeededError, match="damaged"):
            await api.stop_activity(1)
