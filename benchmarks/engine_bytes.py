"""Bytes on the wire per hour of riding, ours vs one request per fix; and a 2-hour backlog's
catch-up time. Everything real: the emulator on loopback, the API client, the whole service.

1. **One hour of 1 Hz riding, replayed fast** (a seeded synthetic city bike ride from
   ``sampler_rides.py`` and, when ../shared is there, the first hour of a real 1 Hz track)
   through the whole ``tracker run`` service at ``SPEED``× with every interval scaled by the
   same factor (batch every 10 s of ride time, commits every second of it). A byte-counting
   TCP proxy between the client and the emulator counts every byte sent, headers included.
   **Baseline, same run:** the same fixes sent Traccar-style, one ``updateActivity`` per fix,
   through the same client and proxy.
   **Liveness:** for every fix, how long (in ride time) until the server holds a point at or
   after it, i.e. until the segment that covers it is drawn. The emulator store is sampled
   every few milliseconds of wall time, so the figure is accurate to about 1 s of ride time.
2. **Heart rate rides along**: a 15-minute ride at 20x, once without a strap and once with the
   synthetic one (``device = "synthetic:7"``): requests and bytes through the same proxy, and
   the share of ride-seconds for which the server holds a heart-rate sample.
3. **Catch-up of a 2-hour backlog**: the link comes back after a 2-hour outage; the uplink
   with its default settings (500 points a batch, 1 s between batches) sends the backlog.
   Measured for the sampler's points at 10 m, and for the worst case of every fix kept; the
   baseline is one request per point.

Run: ``.venv/bin/python benchmarks/engine_bytes.py``
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from tracker.logs import configure_logging

configure_logging("error")  # before the modules below bind their loggers


from sampler_rides import city  # noqa: E402

from tracker.config import Settings  # noqa: E402
from tracker.demo import CountingProxy  # noqa: E402
from tracker.emulator.runner import EmulatorHandle, running_emulator  # noqa: E402
from tracker.engine.service import Service  # noqa: E402
from tracker.engine.uplink import Uplink  # noqa: E402
from tracker.gps.stream import open_fix_stream  # noqa: E402
from tracker.mmt.client import MapMyTracksClient  # noqa: E402
from tracker.mmt.gpx import build_gpx  # noqa: E402
from tracker.mmt.tokens import TokenStore  # noqa: E402
from tracker.model import Fix, Point  # noqa: E402
from tracker.ride.activity import Trigger  # noqa: E402
from tracker.ride.sampler import Sampler  # noqa: E402
from tracker.storage.outbox import Outbox, activity_with  # noqa: E402

SPEED = 50.0
MAX_DELAY_S = 40  # sampler delay bound, so that delay + batch interval + commit < 60 s
REAL_TRACK = Path(__file__).resolve().parents[2] / "shared/data/tracks/ROB__gx.to.gavres.nmea"


async def paced(fixes: list[Fix], speed: float, yielded: list[float]) -> AsyncIterator[Fix]:
    """The fixes at ``speed``× their own pace; records the wall time of the first one."""
    start = time.monotonic()
    t0 = fixes[0].unix
    for fix in fixes:
        due = start + (fix.unix - t0) / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if not yielded:
            yielded.append(time.monotonic())
        yield fix
    await asyncio.Event().wait()  # the receiver stays on; the ride is stopped by command


def through_proxy(s: Settings, proxy: CountingProxy, emu: EmulatorHandle) -> Settings:
    """``s`` with the API reached through the byte-counting ``proxy`` in front of ``emu``."""
    return s.replace(
        "api", base_url=proxy.url("/api3"), client_id=emu.client_id, client_secret=emu.client_secret
    )


def scaled_settings(
    data: Path, proxy: CountingProxy, emu: EmulatorHandle, speed: float = SPEED
) -> Settings:
    s = through_proxy(Settings().replace("storage", data_dir=str(data)), proxy, emu)
    s = s.replace("uplink", batch_interval_s=10.0 / speed, drain_interval_s=1.0 / speed)
    s = s.replace("sampler", max_error_m=10.0, max_delay_s=MAX_DELAY_S)
    s = s.replace("activity", autostart=True)
    return s.replace("gpio", pin_factory="none")


async def ours(
    fixes: list[Fix], *, speed: float = SPEED, strap: str | None = None
) -> dict[str, Any]:
    async with running_emulator() as emu, CountingProxy(emu.host, emu.port) as proxy:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            store = TokenStore.in_dir(data)
            store.save(emu.issue_tokens())
            s = scaled_settings(data, proxy, emu, speed)
            if strap is not None:
                s = s.replace("heart_rate", enabled=True, device=strap)
            yielded: list[float] = []
            svc = Service(
                s,
                handle_signals=False,
                commit_interval_s=1.0 / speed,
                fix_stream=lambda: paced(fixes, speed, yielded),
                client_factory=lambda: MapMyTracksClient(s.api, store),
            )
            task = asyncio.create_task(svc.run())
            first_seen: dict[int, float] = {}
            while svc.counters.fixes < len(fixes):
                for act in emu.activities:
                    for p in act.points[len(first_seen) :]:
                        first_seen.setdefault(p.timestamp, time.monotonic())
                await asyncio.sleep(0.005)
            await svc.activities.stop(Trigger.COMMAND)
            while not (emu.activities and emu.activities[0].state == "stopped"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            svc.stop()
            await task
    (remote,) = emu.activities
    w0, t0 = yielded[0], fixes[0].unix
    seen = sorted((ts, (w - w0) * speed + t0) for ts, w in first_seen.items())
    lat = []
    j = 0
    for f in fixes:  # latency of a fix: ride time until a point at or after it is on the server
        while j < len(seen) and seen[j][0] < f.unix:
            j += 1
        if j < len(seen):
            lat.append(seen[j][1] - f.unix)
    counts = emu.request_counts()
    requests = sum(sum(v.values()) for k, v in counts.items() if not k.startswith("oauth"))
    ride_seconds = range(int(fixes[0].unix), int(fixes[-1].unix) + 1)
    hr_seconds = {s.timestamp for s in remote.hr} & set(ride_seconds)
    return {
        "points": len(remote.points),
        "hr_coverage": len(hr_seconds) / len(ride_seconds),
        "hr_samples": len(remote.hr),
        "requests": requests,
        "bytes": proxy.bytes_up,
        "max_latency_s": max(lat),
        "p95_latency_s": sorted(lat)[int(0.95 * len(lat))],
        "live_fixes": len(lat),
        "fixes": len(fixes),
    }


def as_point(f: Fix) -> Point:
    ele = None if f.alt_msl is None else round(f.alt_msl, 1)
    return Point(int(f.unix), round(f.lat, 6), round(f.lon, 6), ele)


async def per_point(fixes: list[Fix]) -> dict[str, Any]:
    """Traccar style: every fix its own request, through the same client and proxy."""
    async with running_emulator() as emu, CountingProxy(emu.host, emu.port) as proxy:
        with tempfile.TemporaryDirectory() as tmp:
            store = TokenStore.in_dir(tmp)
            store.save(emu.issue_tokens())
            s = through_proxy(Settings(), proxy, emu)
            points = []
            last = None
            for f in fixes:
                p = as_point(f)
                if last is None or p.timestamp > last:
                    points.append(p)
                    last = p.timestamp
            async with MapMyTracksClient(s.api, store) as client:
                aid = await client.start_activity(
                    title="per point",
                    activity_type="cycling",
                    status="private",
                    tags=(),
                    points=points[:1],
                )
                for p in points[1:]:
                    await client.update_activity(aid, [p])
                await client.stop_activity(aid)
    return {"points": len(points), "requests": len(points) + 1, "bytes": proxy.bytes_up}


async def catch_up(points: list[Point], *, baseline: bool = False) -> dict[str, Any]:
    """Wall time to send a backlog once the link is back (default uplink settings)."""
    async with running_emulator() as emu, CountingProxy(emu.host, emu.port) as proxy:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            store = TokenStore.in_dir(data)
            store.save(emu.issue_tokens())
            s = through_proxy(Settings(), proxy, emu)
            async with MapMyTracksClient(s.api, store) as client:
                aid = await client.start_activity(
                    title="backlog",
                    activity_type="cycling",
                    status="private",
                    tags=(),
                    points=points[:1],
                )
                t = time.perf_counter()
                if baseline:
                    for p in points[1:]:
                        await client.update_activity(aid, [p])
                    requests = len(points) - 1
                else:
                    box = Outbox(data)
                    await box.open()
                    rec = await box.create_activity("backlog")
                    await box.update_activity(activity_with(rec, remote_id=aid))
                    box.stage(rec.local_id, points[1:])
                    await box.commit()
                    up = Uplink(
                        box, client, s.uplink, s.activity, build_gpx=build_gpx, rng=random.Random(1)
                    )
                    t = time.perf_counter()
                    await up.run_until_drained()
                    requests = up.status.requests
                    await box.close()
                elapsed = time.perf_counter() - t
            (remote,) = emu.activities
            assert len(remote.points) == len(points), (len(remote.points), len(points))
    return {
        "points": len(points),
        "requests": requests,
        "seconds": elapsed,
        "bytes": proxy.bytes_up,
    }


async def real_hour() -> list[Fix] | None:
    if not REAL_TRACK.is_file():
        return None
    s = Settings().replace("gps", source="replay", replay_file=str(REAL_TRACK), replay_speed=0)
    fixes = [f async for f in open_fix_stream(s.gps, s.filters)]
    return [f for f in fixes if f.unix < fixes[0].unix + 3600]


def sample(fixes: list[Fix], max_error_m: float) -> list[Point]:
    sampler = Sampler(max_error_m, MAX_DELAY_S)
    out: list[Point] = []
    for f in fixes:
        out += sampler.feed(f)
    return out + sampler.flush()


async def heart_rate_case() -> None:
    """The same 15-minute ride at 20x, without and with a (synthetic) strap."""
    fixes = city(seed=3, minutes=15.0)
    plain = await ours(fixes, speed=20.0)
    strap = await ours(fixes, speed=20.0, strap="synthetic:7")
    more_requests = strap["requests"] / plain["requests"] - 1
    more_bytes = strap["bytes"] / plain["bytes"] - 1
    print("\nheart rate, a 15-minute ride at 20x through the same proxy:")
    for label, r in (("no strap", plain), ("strap", strap)):
        print(
            f"  {label:9s}: {r['requests']:4d} requests, {r['bytes']:7d} bytes,"
            f" {r['hr_samples']:4d} HR samples on the server"
            f" ({r['hr_coverage']:.0%} of the ride's seconds)"
        )
    goal = (
        strap["requests"] <= plain["requests"] * 1.10 + 1
        and more_bytes <= 0.35
        and strap["hr_coverage"] >= 0.90
    )
    print(
        f"  strap costs {more_requests:+.0%} requests, {more_bytes:+.0%} bytes;"
        f" goal (<= +10 % requests (+1), <= +35 % bytes, >= 90 % of seconds with HR):"
        f" {'met' if goal else 'NOT met'}"
    )


async def main() -> None:
    configure_logging("error")
    rides = {"synthetic city bike ride, 60 min": city(seed=1, minutes=60.0)}
    real = await real_hour()
    if real is not None:
        rides["real 1 Hz track (ROB gx, first hour)"] = real
    print(f"speed {SPEED:g}x, sampler 10 m / {MAX_DELAY_S} s, batch every 10 s (ride time)")
    for name, fixes in rides.items():
        hours = (fixes[-1].unix - fixes[0].unix) / 3600
        a = await ours(fixes)
        b = await per_point(fixes)
        print(f"\n{name}: {a['fixes']} fixes over {hours:.2f} h")
        print(
            f"  ours      : {a['requests']:5d} requests, {a['bytes']:9d} bytes"
            f" ({a['bytes'] / hours:,.0f} B/h), {a['points']} points"
        )
        print(
            f"  per fix   : {b['requests']:5d} requests, {b['bytes']:9d} bytes"
            f" ({b['bytes'] / hours:,.0f} B/h)"
        )
        print(
            f"  ratio     : {b['bytes'] / a['bytes']:.1f}x fewer bytes,"
            f" {b['requests'] / a['requests']:.0f}x fewer requests"
        )
        print(
            f"  liveness  : max {a['max_latency_s']:.1f} s, p95 {a['p95_latency_s']:.1f} s"
            f" from a fix to a point at or after it on the server ({a['live_fixes']} fixes)"
        )
    await heart_rate_case()
    backlog = city(seed=2, minutes=120.0)
    kept = sample(backlog, 10.0)
    every = [as_point(f) for f in backlog]
    print("\n2-hour backlog after an outage (default uplink: 500 points a batch, 1 s apart):")
    for label, pts, base in (
        ("sampler points, 10 m", kept, False),
        ("every fix kept", every, False),
        ("baseline, one request per fix", every, True),
    ):
        r = await catch_up(pts, baseline=base)
        print(
            f"  {label:32s}: {r['points']:5d} points, {r['requests']:5d} requests,"
            f" {r['seconds']:6.2f} s, {r['bytes']:9d} bytes"
        )


if __name__ == "__main__":
    asyncio.run(main())
