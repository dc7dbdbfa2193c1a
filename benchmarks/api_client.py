"""What the API client's two design choices cost or save, against baselines in the same run.

1. Keep-alive: one ``aiohttp.ClientSession`` for every call (what ``MapMyTracksClient`` does)
   against a new session, hence a new TCP connection, per call. Both send the same
   ``updateActivity`` calls (10 points each, a Bearer header, multipart) to the emulator on
   loopback. Over the internet a new connection also costs a TLS handshake and round trips, so
   the loopback ratio is a lower bound of the saving.
2. Crash-safe token save: ``TokenStore.save`` (temp file, fsync, rename, fsync of the directory)
   against a plain ``write_text`` of the same JSON. This is the price of never losing a rotated
   refresh token; it is paid once per refresh (once an hour with the real service).

Run: ``.venv/bin/python benchmarks/api_client.py``
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from tracker.config import ApiSettings
from tracker.emulator import running_emulator
from tracker.logs import configure_logging
from tracker.mmt.client import MapMyTracksClient, encode_data
from tracker.mmt.tokens import TokenStore
from tracker.model import Point

CALLS = 200
POINTS = 10
SAVES = 200
T0 = 1_763_809_643


def batch(n: int) -> list[Point]:
    return [Point(T0 + n * POINTS + i, 51.28 + i * 1e-5, 1.08, 10.0) for i in range(POINTS)]


async def keep_alive(settings: ApiSettings, store: TokenStore, activity: int, first: int) -> float:
    async with MapMyTracksClient(settings, store) as client:
        began = time.perf_counter()
        for n in range(first, first + CALLS):
            await client.update_activity(activity, batch(n))
        return time.perf_counter() - began


async def new_connection_each(url: str, token: str, activity: int, first: int) -> float:
    began = time.perf_counter()
    for n in range(first, first + CALLS):
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("activity_id", str(activity))
            form.add_field("data", encode_data(batch(n)))
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(url, data=form, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
    return time.perf_counter() - began


def token_saves(directory: Path) -> tuple[float, float]:
    store = TokenStore.in_dir(directory / "safe")
    pair = {"access_token": "a" * 40, "refresh_token": "r" * 40, "token_type": "Bearer",
            "expires_in": 3600}  # fmt: skip
    safe, plain = [], []
    plain_path = directory / "plain.json"
    for _ in range(SAVES):
        began = time.perf_counter()
        store.save(pair)
        safe.append(time.perf_counter() - began)
        began = time.perf_counter()
        plain_path.write_text(json.dumps(pair))
        plain.append(time.perf_counter() - began)
    return statistics.median(safe), statistics.median(plain)


async def main() -> None:
    configure_logging("warning")
    async with running_emulator(port=0) as emu:
        with tempfile.TemporaryDirectory() as tmp:
            store = TokenStore.in_dir(tmp)
            store.save(emu.issue_tokens())
            settings = ApiSettings(base_url=emu.base_url, client_id=emu.client_id,
                                   client_secret=emu.client_secret)  # fmt: skip
            async with MapMyTracksClient(settings, store) as client:
                activity = await client.start_activity(
                    title="bench", activity_type="cycling", status="private", tags=(),
                    points=[Point(T0 - 1, 51.28, 1.08)],
                )  # fmt: skip
            token = str((store.load_tokens() or {})["access_token"])
            url = f"{emu.base_url}/updateActivity"
            # Warm up both paths, then alternate to share the machine's noise fairly.
            await keep_alive(settings, store, activity, 0)
            await new_connection_each(url, token, activity, CALLS)
            fresh = await new_connection_each(url, token, activity, 2 * CALLS)
            kept = await keep_alive(settings, store, activity, 3 * CALLS)
            safe, plain = token_saves(Path(tmp))
    print(f"updateActivity x {CALLS}, {POINTS} points each, emulator on loopback")
    print(f"baseline (new session + TCP connection per call): {CALLS / fresh:8.0f} calls/s")
    print(f"MapMyTracksClient (one keep-alive session):       {CALLS / kept:8.0f} calls/s")
    print(f"keep-alive speed-up: {fresh / kept:.2f}x (loopback, no TLS: a lower bound)")
    print(f"token save, median of {SAVES}:")
    print(f"baseline (write_text, no fsync):                  {plain * 1e3:8.3f} ms")
    print(f"TokenStore.save (tmp, fsync, rename, fsync dir):  {safe * 1e3:8.3f} ms")
    print(f"cost of crash safety: {safe / plain:.1f}x, paid once per refresh")


if __name__ == "__main__":
    asyncio.run(main())
