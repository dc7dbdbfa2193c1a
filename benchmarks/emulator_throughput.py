"""How fast the emulator takes live updates, against a bare aiohttp handler in the same run.

Both servers run on loopback in this process and get the same client and the same requests:
multipart ``updateActivity`` bodies of 60 points (a minute at 1 Hz) with a Bearer header. The
baseline only parses the multipart body and answers JSON; the emulator also checks the token
(authlib), validates every point and stores it. The ratio says what the strictness costs, and the
page figure says how long ``GET /_emulator/`` takes for a long ride.

Run: ``.venv/bin/python benchmarks/emulator_throughput.py``
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web

from tracker.emulator import running_emulator

REQUESTS = 300
POINTS_PER_REQUEST = 60
T0 = 1_763_809_643


def payload(start: int) -> str:
    return json.dumps({"loc": [
        {"lat": round(51.28 + i * 1e-5, 6), "lon": 1.08, "ele": 10.0, "timestamp": start + i,
         "unix_timestamp": start + i} for i in range(POINTS_PER_REQUEST)]},
        separators=(",", ":"))


async def send_updates(http: aiohttp.ClientSession, url: str, token: str, activity_id: int,
                       first: int) -> float:
    began = time.perf_counter()
    for n in range(REQUESTS):
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("activity_id", str(activity_id))
        form.add_field("data", payload(first + n * POINTS_PER_REQUEST))
        async with http.post(url, data=form, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
            await r.read()
    return time.perf_counter() - began


async def baseline() -> float:
    async def handler(request: web.Request) -> web.Response:
        fields = await request.post()
        json.loads(str(fields["data"]))
        return web.json_response({"function": "updateActivity", "ok": 1})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api3/updateActivity", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            return await send_updates(http, f"http://127.0.0.1:{port}/api3/updateActivity",
                                      "x", 1, T0)
    finally:
        await runner.cleanup()


async def emulator() -> tuple[float, float, int]:
    async with running_emulator() as emu, aiohttp.ClientSession() as http:
        token = emu.issue_tokens()["access_token"]
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("status", "private")
        form.add_field("activity_title", "bench")
        form.add_field("data", payload(T0))
        async with http.post(f"{emu.base_url}/startActivity", data=form,
                             headers={"Authorization": f"Bearer {token}"}) as r:
            activity_id = (await r.json())["activity_id"]
        elapsed = await send_updates(http, f"{emu.base_url}/updateActivity", token, activity_id,
                                     T0 + POINTS_PER_REQUEST)
        began = time.perf_counter()
        async with http.get(emu.inspect_url) as r:
            page = await r.read()
        page_s = time.perf_counter() - began
        return elapsed, page_s, len(page)


async def main() -> None:
    await baseline()  # warm-up: imports, first connections
    base = await baseline()
    emu, page_s, page_bytes = await emulator()
    points = REQUESTS * POINTS_PER_REQUEST
    print(f"requests: {REQUESTS} x {POINTS_PER_REQUEST} points, sequential, one connection pool")
    print(f"baseline (bare aiohttp multipart handler): {REQUESTS / base:8.0f} req/s  "
          f"{points / base:9.0f} points/s")
    print(f"emulator updateActivity (auth+validate+store): {REQUESTS / emu:8.0f} req/s  "
          f"{points / emu:9.0f} points/s")
    print(f"emulator / baseline time ratio: {emu / base:.2f}x")
    print(f"page for one ride of {points + POINTS_PER_REQUEST} points: {page_s * 1000:.0f} ms, "
          f"{page_bytes / 1024:.0f} KiB")


if __name__ == "__main__":
    asyncio.run(main())
