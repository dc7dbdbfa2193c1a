"""A Pi-sized run (issue 17): `tracker run` in 10 % of one core, 10 epochs/s, for 5 minutes.

A Pi Zero 2 W core gives CPython roughly a tenth of this machine's core, so the real
`python -m tracker run` is started inside a cgroup (v1 ``cpu`` controller) with
``cpu.cfs_quota_us = 10000`` per ``cpu.cfs_period_us = 100000`` (it joins the group before
exec, so its imports are limited too) and rides a real 10 Hz log (gpsd's Trimble RTK sample,
played forth and back, re-stamped so GPS time is the wall time each epoch is written: see
live_ride.py) against the API emulator in this process, with the production defaults for the
sampler (max_delay_s 60) and the uplink (batch_interval_s 10).

Criteria, each with a PASS/FAIL line:
* no fix lost: every epoch written reached the port whole (no overrun) and was recorded by the
  service (``tracker status``' engine.fixes_recorded over the control socket, after the ride);
* no growing backlog: neither the bytes the tracker has not yet read from the port (sampled each
  0.5 s) nor the points waiting in its outbox (each 5 s) grow: the mean over the ride's last
  third is at most the first third's (after a 30 s warm-up) plus one epoch / one point;
* every point on the emulator within max_delay_s + batch_interval_s + 5 s of its fix: GET
  /_emulator/activities every 0.5 s notes when each point timestamp first appears; its delay is
  that wall time minus the timestamp (whole seconds, so up to 1 s too high, and up to 0.5 s for
  the polling: both make the figure worse, never better).

Where the cgroup cannot be made (not root, no v1 cpu controller), it says so and runs unlimited.

    .venv/bin/python benchmarks/pi_sized.py [--seconds 300] [--cpu-percent 10] [--no-leds]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import live_ride as lr

from tracker.emulator.runner import running_emulator
from tracker.engine.control_socket import send_command
from tracker.logs import configure_logging
from tracker.mmt.tokens import TokenStore

CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
WARMUP_S = 30.0
POLL_S = 0.5
STATUS_EVERY_S = 5.0


class CpuGroup:
    """A cgroup-v1 cpu group with a CFS quota; removed on close (once its process exited)."""

    def __init__(self, percent: float) -> None:
        self.path = CGROUP_ROOT / f"tracker-pi-sized-{time.time_ns()}"
        self.percent = percent
        self.path.mkdir()
        try:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * percent / 100)))
        except OSError:
            self.path.rmdir()
            raise

    def wrapper(self) -> list[str]:
        """A prefix that moves the shell into the group, then execs the command (same PID)."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path)]

    def stat(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
        return out

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


@dataclass
class Observations:
    first_seen: dict[int, float] = field(default_factory=dict)  # point timestamp -> wall time
    unread: list[tuple[float, int]] = field(default_factory=list)  # (wall, bytes)
    waiting: list[tuple[float, int]] = field(default_factory=list)  # (wall, points)
    freshness: list[tuple[float, float]] = field(default_factory=list)  # (wall, newest point age)
    poll_errors: int = 0


async def status_of(data_dir: Path) -> dict[str, Any] | None:
    try:
        reply = await asyncio.to_thread(send_command, data_dir, "status", timeout_s=5.0)
    except Exception:
        return None
    status = reply.get("status")
    return status if isinstance(status, dict) else None


async def poll_emulator(root_url: str, obs: Observations, pty: lr.Pty, stop: asyncio.Event) -> None:
    """Every 0.5 s: which point timestamps the emulator holds, and the port's unread bytes."""
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            now = time.time()
            obs.unread.append((now, pty.unread_bytes()))
            try:
                async with http.get(f"{root_url}/_emulator/activities") as resp:
                    activities = await resp.json()
            except (aiohttp.ClientError, TimeoutError):
                obs.poll_errors += 1
                activities = []
            seen = time.time()
            for activity in activities:
                for point in activity.get("points", []):
                    obs.first_seen.setdefault(int(point["timestamp"]), seen)
            if obs.first_seen:
                obs.freshness.append((seen, seen - max(obs.first_seen)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)


async def poll_status(data_dir: Path, obs: Observations, stop: asyncio.Event) -> None:
    while not stop.is_set():
        status = await status_of(data_dir)
        if status is not None:
            obs.waiting.append((time.time(), int(status.get("points_waiting", 0))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)


def thirds(series: list[tuple[float, int]], start: float, end: float) -> tuple[float, float]:
    """Mean of the first and of the last third of ``series`` between ``start`` and ``end``."""
    span = (end - start) / 3
    first = [v for t, v in series if start <= t < start + span]
    last = [v for t, v in series if end - span <= t <= end]
    return (statistics.fmean(first) if first else 0.0, statistics.fmean(last) if last else 0.0)


def per_minute_max(series: list[tuple[float, int]], start: float) -> str:
    buckets: dict[int, int] = {}
    for t, v in series:
        if t >= start:
            minute = int((t - start) // 60)
            buckets[minute] = max(buckets.get(minute, 0), v)
    return " ".join(str(buckets[m]) for m in sorted(buckets))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def run(args: argparse.Namespace) -> int:
    print(f"machine: {lr.machine()}")
    print(f"command: {' '.join(sys.argv)}")
    log = lr.load_epochs(Path(args.log))
    print(
        f"log: {Path(args.log).name}, {len(log)} epochs played forth and back at "
        f"{args.rate:g} epochs/s, re-stamped to wall time; "
        f"LEDs {'on (mock pins)' if args.leds else 'off'}"
    )
    group: CpuGroup | None = None
    if args.cpu_percent > 0:
        try:
            group = CpuGroup(args.cpu_percent)
            print(
                f"cgroup: {group.path}, cpu.cfs_quota_us {int(PERIOD_US * args.cpu_percent / 100)}"
                f" per cpu.cfs_period_us {PERIOD_US} = {args.cpu_percent:g} % of one core"
            )
        except OSError as exc:
            print(
                f"NOTE: cannot make a cgroup under {CGROUP_ROOT} ({exc}): running UNLIMITED, so "
                "this is not a Pi-sized run"
            )
    else:
        print("NOTE: --cpu-percent 0: running unlimited")
    bound = args.max_delay + args.batch_interval + 5.0
    sys.stdout.flush()

    obs = Observations()
    tracker = None
    writer: lr.EpochWriter | None = None
    with lr.temp_dir("pisized-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        pty = lr.Pty.create(tmp / "gps0")
        try:
            async with running_emulator() as emu:
                TokenStore.in_dir(data_dir).save(emu.issue_tokens())
                config = lr.write_config(
                    tmp / "config.toml", data_dir, emu, pty.link, leds=args.leds,
                    uplink=f"batch_interval_s = {args.batch_interval}",
                    sampler=f"max_delay_s = {args.max_delay}",
                )  # fmt: skip
                prefix = group.wrapper() if group else []
                tracker, started = lr.spawn_tracker(config, tmp / "tracker.log", prefix=prefix)
                opened = await asyncio.to_thread(lr.wait_open, tracker, pty.name, started, 120)
                print(f"tracker run: serial port open {opened * 1000:.0f} ms after spawn")
                await asyncio.sleep(0.3)  # pyserial flushes the input on open
                writer = lr.EpochWriter([pty], log, args.rate)
                stop = asyncio.Event()
                pollers = [
                    asyncio.create_task(poll_emulator(emu.root_url, obs, pty, stop)),
                    asyncio.create_task(poll_status(data_dir, obs, stop)),
                ]
                cpu0 = lr.cpu_ns(tracker.pid)
                throttle0 = group.stat() if group else {}
                writer.start()
                ride_start = writer.t0
                await asyncio.sleep(args.seconds + max(0.0, ride_start - time.time()))
                writer.stop()
                ride_end = writer.last_stamp
                cpu_ride = (lr.cpu_ns(tracker.pid) - cpu0) / 1e9
                throttle1 = group.stat() if group else {}
                # The tail: the tracker reads what is left in the port, then sends what waits.
                tail_start = time.time()
                while pty.unread_bytes() and time.time() - tail_start < 60:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # another process's progress: polled
                await asyncio.sleep(1.0)
                status = await status_of(data_dir) or {}
                while time.time() - tail_start < args.batch_interval + 5:
                    late = await status_of(data_dir)
                    if late is not None and late.get("points_waiting") == 0:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(POLL_S * 2)
                stop.set()
                await asyncio.gather(*pollers)
                mem = lr.memory_kib(tracker.pid)
        finally:
            if writer is not None:
                writer.stop()
            code = None
            if tracker is not None:
                code = await asyncio.to_thread(lr.stop_process, tracker)
            pty.close()
            if group is not None:
                group.close()
            if code not in (None, 0):
                print(f"tracker exited {code}; end of its log:", file=sys.stderr)
                print((tmp / "tracker.log").read_text(errors="replace")[-3000:], file=sys.stderr)

    written = writer.epochs_written if writer else 0
    ride_s = ride_end - ride_start
    engine = status.get("engine", {})
    recorded = int(engine.get("fixes_recorded", -1))
    epoch_bytes = writer.bytes_per_epoch if writer else 0.0
    late_ms = writer.max_late_s * 1000 if writer else 0.0
    print(
        f"ride: {ride_s:.1f} s, {written} epochs written ({epoch_bytes:.0f} B each), "
        f"the writer at most {late_ms:.0f} ms late"
    )
    print(
        f"tracker run: {cpu_ride:.2f} CPU-s during the ride = "
        f"{cpu_ride / ride_s * 3600:.1f} CPU-s per ride-hour, "
        f"{cpu_ride * 1000 / max(written, 1):.2f} ms per epoch, "
        f"{cpu_ride / ride_s * 100:.1f} % of one core; RSS {mem['VmRSS'] / 1024:.1f} MiB "
        f"(peak {mem['VmHWM'] / 1024:.1f})"
    )
    if group is not None and throttle1:
        periods = throttle1["nr_periods"] - throttle0.get("nr_periods", 0)
        throttled = throttle1["nr_throttled"] - throttle0.get("nr_throttled", 0)
        throttled_s = (throttle1["throttled_time"] - throttle0.get("throttled_time", 0)) / 1e9
        print(
            f"cgroup: throttled in {throttled} of {periods} periods, "
            f"{throttled_s:.1f} s throttled in all"
        )
    print(
        f"service: fixes {engine.get('fixes')} recorded {recorded} stale "
        f"{engine.get('stale_fixes_skipped')} points kept {engine.get('points_kept')}, sent "
        f"{status.get('uplink', {}).get('points_sent')}; filter counters {status.get('drops')}"
    )

    # 1. no fix lost. The decoder completes an epoch when the next one begins (by design, see
    # tracker/gps/nmea/decoder.py), so the ride's last epoch may still be held: not lost.
    # Every epoch counts, the last one too: an epoch closes when its burst ends (issue 15).
    lost = max(0, written - recorded)
    print(
        f"{verdict(lost == 0 and pty.overrun_bytes == 0)} no fix lost: {written} epochs written, "
        f"{recorded} recorded by the service ({lost} lost), {pty.overrun_bytes} bytes overrun"
    )
    # 2. no growing backlog
    steady = ride_start + min(WARMUP_S, ride_s / 4)
    u_first, u_last = thirds([(t, v) for t, v in obs.unread], steady, ride_end)
    w_first, w_last = thirds(obs.waiting, steady, ride_end)
    backlog_ok = u_last <= u_first + epoch_bytes and w_last <= w_first + 1
    print(
        f"{verdict(backlog_ok)} no growing backlog: unread bytes in the port, mean first/last "
        f"third {u_first:.0f}/{u_last:.0f} (max per minute: "
        f"{per_minute_max(obs.unread, ride_start)}); points waiting {w_first:.1f}/{w_last:.1f} "
        "(max per minute: "
        f"{per_minute_max(obs.waiting, ride_start)})"
    )
    # 3. every point within the bound
    delays = sorted(
        (seen - ts, ts) for ts, seen in obs.first_seen.items() if ride_start - 1 <= ts <= ride_end
    )
    worst = delays[-1][0] if delays else float("nan")
    median = statistics.median(d for d, _ in delays) if delays else float("nan")
    fresh = [age for t, age in obs.freshness if ride_start + bound <= t <= ride_end]
    print(
        f"{verdict(bool(delays) and worst <= bound)} every point within {bound:g} s "
        f"(max_delay_s {args.max_delay} + batch_interval_s {args.batch_interval:g} + 5): "
        f"{len(delays)} points on the emulator, delay median {median:.1f} s, max {worst:.1f} s; "
        f"newest point at most {max(fresh) if fresh else float('nan'):.1f} s old during the ride; "
        f"{obs.poll_errors} poll errors"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="ride length (wall s)")
    parser.add_argument("--rate", type=float, default=10.0, help="epochs per second")
    parser.add_argument(
        "--cpu-percent", type=float, default=10.0, help="CFS quota in % of one core (0 = no cgroup)"
    )
    parser.add_argument("--log", default=str(lr.LOG_10HZ), help="a real NMEA log")
    parser.add_argument(
        "--no-leds",
        dest="leds",
        action="store_false",
        help="pin_factory none (default: mock pins, LEDs and button on)",
    )
    parser.add_argument("--max-delay", type=int, default=60, help="[sampler] max_delay_s")
    parser.add_argument(
        "--batch-interval", type=float, default=10.0, help="[uplink] batch_interval_s"
    )
    args = parser.parse_args()  # fmt: skip
    configure_logging("warning")  # the emulator's request lines would drown the figures
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
