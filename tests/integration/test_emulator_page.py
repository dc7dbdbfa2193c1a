"""The inspection page: its HTML, and a real headless chromium drawing a live track."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tracker.emulator import EmulatorHandle, running_emulator
from tracker.emulator.page import HR_COLOUR, TRACK_COLOUR
from tracker.emulator.store import Payload, StoredHeartRate, StoredPoint

T0 = 1_763_809_643


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def decode_png(blob: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit, non-interlaced RGB/RGBA PNG."""
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, bytearray(), 0
    height = channels = 0
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, body = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0), "only 8-bit non-interlaced PNGs"
            assert colour_type in (2, 6), f"colour type {colour_type} is not RGB/RGBA"
            channels = 4 if colour_type == 6 else 3
        elif kind == b"IDAT":
            idat += body
    data = zlib.decompress(bytes(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_byte = data[start]
        row = bytearray(data[start + 1:start + 1 + stride])
        if kind_byte == 1:
            for i in range(channels, stride):
                row[i] = (row[i] + row[i - channels]) & 0xFF
        elif kind_byte == 2:
            row = bytearray((a + b) & 0xFF for a, b in zip(row, prev, strict=True))
        elif kind_byte == 3:
            for i in range(stride):
                left = row[i - channels] if i >= channels else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind_byte == 4:
            for i in range(stride):
                a = row[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[i] = (row[i] + pred) & 0xFF
        out[y * stride:(y + 1) * stride] = row
        prev = row
    return width, height, channels, bytes(out)


def count_colour(png: bytes, rgb: tuple[int, int, int], tolerance: int = 6) -> int:
    width, height, channels, pixels = decode_png(png)
    n = 0
    for i in range(0, width * height * channels, channels):
        if (abs(pixels[i] - rgb[0]) <= tolerance and abs(pixels[i + 1] - rgb[1]) <= tolerance
                and abs(pixels[i + 2] - rgb[2]) <= tolerance):
            n += 1
    return n


def loop_ride(n: int = 120) -> Payload:
    """A closed loop of n points around Canterbury with a heart rate that rises and falls."""
    points = tuple(
        StoredPoint(T0 + i, 51.28 + 0.01 * math.sin(2 * math.pi * i / n),
                    1.08 + 0.016 * math.cos(2 * math.pi * i / n), 10.0)
        for i in range(n)
    )
    hr = tuple(StoredHeartRate(T0 + i, 110 + int(30 * math.sin(math.pi * i / n)))
               for i in range(n))
    return Payload(points, hr)


async def add_live_activity(emu: EmulatorHandle, title: str = "Live loop") -> int:
    """A live activity started through the real API, then filled directly."""
    token = emu.issue_tokens()["access_token"]
    ride = loop_ride()
    first = ride.loc[0]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("status", "public")
    form.add_field("activity_type", "cycling")
    form.add_field("activity_title", title)
    form.add_field("data", json.dumps({"loc": [
        {"lat": first.lat, "lon": first.lon, "ele": 10.0, "timestamp": first.timestamp,
         "unix_timestamp": first.timestamp}]}))
    async with aiohttp.ClientSession() as http, http.post(
            f"{emu.base_url}/startActivity", data=form,
            headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        activity_id = int((await r.json())["activity_id"])
    activity = emu.activity(activity_id)
    activity.check_append(ride)
    activity.append(ride)
    return activity_id


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator() as handle:
        yield handle


async def fetch_page(emu: EmulatorHandle) -> str:
    async with aiohttp.ClientSession() as http, http.get(emu.inspect_url) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        return await r.text()


async def test_empty_page_says_so_and_does_not_refresh(emu):
    page = await fetch_page(emu)
    assert "No activities yet" in page
    assert "http-equiv='refresh'" not in page


async def test_live_activity_is_drawn_and_page_refreshes(emu):
    activity_id = await add_live_activity(emu)
    page = await fetch_page(emu)
    assert "http-equiv='refresh'" in page
    assert f"id='activity-{activity_id}'" in page
    polyline = page.split("<polyline points='", 1)[1].split("'", 1)[0]
    assert len(polyline.split()) == 120  # every stored point
    assert f"stroke='{TRACK_COLOUR}'" in page
    assert f"stroke='{HR_COLOUR}'" in page  # the heart-rate line under the track
    assert "110–139 bpm" in page or "110–140 bpm" in page


async def test_stopped_activities_do_not_refresh(emu):
    activity_id = await add_live_activity(emu)
    emu.activity(activity_id).state = "stopped"
    page = await fetch_page(emu)
    assert "http-equiv='refresh'" not in page
    assert "<polyline" in page


async def test_titles_are_escaped(emu):
    await add_live_activity(emu, title="<script>alert(1)</script>")
    page = await fetch_page(emu)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
async def test_headless_chromium_screenshot_shows_the_live_polyline(emu, tmp_path: Path):
    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (./scripts/setup installs Debian's chromium "
                    "when run as root); the page HTML is still tested above")
    await add_live_activity(emu)
    shot = tmp_path / "page.png"
    proc = await asyncio.create_subprocess_exec(
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}", "--window-size=1000,800", emu.inspect_url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert shot.is_file(), err.decode(errors="replace")[-2000:]
    png = shot.read_bytes()
    width, height, _, _ = decode_png(png)
    assert (width, height) == (1000, 800)
    # A 4 px line around a loop fitted into 640×400 is thousands of crimson pixels.
    assert count_colour(png, hex_rgb(TRACK_COLOUR)) > 1500
    assert count_colour(png, hex_rgb(HR_COLOUR)) > 200
