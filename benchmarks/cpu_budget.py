"""A Pi's budget (issue 17): `tracker run` against gpsd on the same stream, side by side.

Each case starts a real `python -m tracker run` (as the systemd unit does: --log-json) reading a
pty, against the API emulator running in this process (autostart on, production defaults for
the sampler, uplink and filters), and, when installed, Debian's gpsd reading a twin pty with one
watching client (``?WATCH={"enable":true,"json":true}``). One writer thread puts the same real
1 Hz log, re-stamped to wall time (see live_ride.py), epoch by epoch into both ptys at 1 epoch/s
and at 10 epochs/s. After a warm-up (start, first fix, activity created) both processes' CPU is
read from /proc/PID/task/*/schedstat (all threads) over the same window.

Per case: CPU-s per ride-hour and ms per epoch for both and their ratio, resident memory
(VmRSS, VmHWM) and the time from spawning the process to its opening the serial port, with the
LEDs off (pin_factory "none") and on (gpiozero's mock pins, the default status/link LEDs and
button). Case "import": the service's import time (-X importtime) and wall time of
`python -m tracker run --help` against `python -c pass`.

    .venv/bin/python benchmarks/cpu_budget.py [--seconds S] [--warmup S]
        [--cases 1hz,10hz,1hz-leds,10hz-leds,import] [--log FILE]

Default window 120 s at 1 Hz and 60 s at 10 Hz (--seconds sets both); about 8 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import live_ride as lr

from tracker.emulator.runner import running_emulator
from tracker.engine.control_socket import send_command
from tracker.logs import configure_logging
from tracker.mmt.tokens import TokenStore

CASES = {
    "1hz": (1.0, False),
    "10hz": (10.0, False),
    "1hz-leds": (1.0, True),
    "10hz-leds": (10.0, True),
}
# The port is opened by then; pyserial's input flush on open must be over before epochs flow.
SETTLE_S = 0.3
# The default log's longest stretch where every fix passes the HDOP filter (the receiver's first
# minutes and a few later spells report HDOP 14-41): 690 epochs, 11.5 minutes of a kayak ride.
DEFAULT_SLICE = "2525:3215"


@dataclass
class Side:
    """One process's figures over the measured window."""

    name: str
    cpu_s: float = 0.0
    open_ms: float = 0.0
    rss_kib: int = 0
    hwm_kib: int = 0
    threads: int = 0
    extra: str = ""

    def per_hour(self, window_s: float) -> float:
        return self.cpu_s / window_s * 3600

    def ms_per_epoch(self, epochs: int) -> float:
        return self.cpu_s * 1000 / epochs if epochs else float("nan")


@dataclass
class CaseResult:
    name: str
    rate_hz: float
    leds: bool
    window_s: float
    epochs: int
    bytes_per_epoch: float
    tracker: Side
    gpsd: Side | None
    notes: list[str] = field(default_factory=list)


async def status_of(data_dir: Path) -> dict[str, Any]:
    try:
        reply = await asyncio.to_thread(send_command, data_dir, "status", timeout_s=5.0)
    except Exception as exc:
        return {"error": repr(exc)}
    status = reply.get("status")
    return status if isinstance(status, dict) else {"error": repr(reply)}


async def run_case(
    name: str, seconds: float, warmup: float, log: list[tuple[bytes, ...]], gpsd: str | None
) -> CaseResult:
    rate_hz, leds = CASES[name]
    with lr.temp_dir(f"cpubench-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        ptys = [lr.Pty.create(tmp / "tracker-gps0")]
        if gpsd:
            ptys.append(lr.Pty.create(tmp / "gpsd-gps0"))
        gpsd_proc: subprocess.Popen[bytes] | None = None
        watcher: lr.GpsdWatcher | None = None
        tracker: subprocess.Popen[bytes] | None = None
        writer = lr.EpochWriter(ptys, log, rate_hz)
        try:
            async with running_emulator() as emu:
                TokenStore.in_dir(data_dir).save(emu.issue_tokens())
                config = lr.write_config(
                    tmp / "config.toml", data_dir, emu, ptys[0].link, leds=leds
                )
                gpsd_side: Side | None = None
                if gpsd:
                    gpsd_proc, port, g_started = lr.start_gpsd(gpsd, str(ptys[1].link), tmp)
                    g_open = await asyncio.to_thread(
                        lr.wait_open, gpsd_proc, ptys[1].name, g_started, 30
                    )
                    watcher = lr.GpsdWatcher(port)
                    await asyncio.to_thread(watcher.start)
                    gpsd_side = Side("gpsd", open_ms=g_open * 1000)
                tracker, started = lr.spawn_tracker(config, tmp / "tracker.log")
                t_open = await asyncio.to_thread(lr.wait_open, tracker, ptys[0].name, started, 60)
                tracker_side = Side("tracker run", open_ms=t_open * 1000)
                await asyncio.sleep(SETTLE_S)
                writer.start()
                await asyncio.sleep(warmup)

                procs = [tracker] + ([gpsd_proc] if gpsd_proc else [])
                cpu0 = [lr.cpu_ns(p.pid) for p in procs]
                e0, tpv0, w0 = writer.epochs_written, _tpv(watcher), time.monotonic()
                await asyncio.sleep(seconds)
                cpu1 = [lr.cpu_ns(p.pid) for p in procs]
                e1, tpv1, w1 = writer.epochs_written, _tpv(watcher), time.monotonic()

                for side, proc, a, b in zip(
                    [tracker_side, gpsd_side], procs, cpu0, cpu1, strict=False
                ):
                    assert side is not None
                    side.cpu_s = (b - a) / 1e9
                    mem = lr.memory_kib(proc.pid)
                    side.rss_kib, side.hwm_kib = mem["VmRSS"], mem["VmHWM"]
                    side.threads = lr.thread_count(proc.pid)
                status = await status_of(data_dir)
                engine = status.get("engine", {})
                tracker_side.extra = (
                    f"fixes {engine.get('fixes')} recorded {engine.get('fixes_recorded')} "
                    f"points kept {engine.get('points_kept')} sent "
                    f"{status.get('uplink', {}).get('points_sent')}, drops {status.get('drops')}"
                )
                if status.get("error"):
                    tracker_side.extra = f"status: {status['error']}"
                if gpsd_side is not None:
                    gpsd_side.extra = f"TPV fixes to the client in the window {tpv1 - tpv0}"
                result = CaseResult(
                    name, rate_hz, leds, w1 - w0, e1 - e0, writer.bytes_per_epoch,
                    tracker_side, gpsd_side,
                )  # fmt: skip
                overruns = [p.overrun_bytes for p in ptys]
                if any(overruns):
                    result.notes.append(f"pty overrun bytes (tracker, gpsd): {overruns}")
                if writer.max_late_s > 0.05:
                    result.notes.append(f"writer up to {writer.max_late_s * 1000:.0f} ms late")
        finally:
            writer.stop()
            if tracker is not None:
                code = await asyncio.to_thread(lr.stop_process, tracker)
                if code != 0:
                    log_tail = (tmp / "tracker.log").read_text(errors="replace")[-2000:]
                    print(f"tracker exited {code}; end of its log:\n{log_tail}", file=sys.stderr)
            if watcher is not None:
                watcher.stop()
            if gpsd_proc is not None:
                await asyncio.to_thread(lr.stop_process, gpsd_proc)
            for pty in ptys:
                pty.close()
    return result


def _tpv(watcher: lr.GpsdWatcher | None) -> int:
    return watcher.tpv_fixes if watcher else 0


def print_case(r: CaseResult) -> None:
    leds = "LEDs on (mock pins)" if r.leds else "LEDs off"
    print(
        f"case {r.name}: {r.rate_hz:g} epoch/s, {leds}: window {r.window_s:.1f} s, "
        f"{r.epochs} epochs of {r.bytes_per_epoch:.0f} B"
    )
    for side in (r.tracker, r.gpsd):
        if side is None:
            continue
        print(
            f"  {side.name:<12} {side.per_hour(r.window_s):7.2f} CPU-s per ride-hour "
            f"{side.ms_per_epoch(r.epochs):7.3f} ms per epoch | RSS {side.rss_kib / 1024:5.1f} "
            f"MiB (peak {side.hwm_kib / 1024:5.1f}) | serial port open {side.open_ms:6.0f} ms "
            f"after spawn | {side.threads} threads"
        )
        print(f"  {'':<12} {side.extra}")
    if r.gpsd is not None and r.gpsd.cpu_s > 0:
        print(f"  ratio tracker/gpsd: {r.tracker.cpu_s / r.gpsd.cpu_s:.1f}x")
    for note in r.notes:
        print(f"  note: {note}")
    sys.stdout.flush()


def print_table(results: list[CaseResult]) -> None:
    print("\n| rate | LEDs | tracker run | gpsd | ratio | tracker RSS / peak | port open |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        t, g = r.tracker, r.gpsd
        unit = "per second" if r.rate_hz == 1 else "per epoch"
        tracker = (
            f"{t.per_hour(r.window_s):.1f} CPU-s per ride-hour "
            f"({t.ms_per_epoch(r.epochs):.2f} ms {unit})"
        )
        gpsd = f"{g.per_hour(r.window_s):.2f}" if g else "not installed"
        ratio = f"{t.cpu_s / g.cpu_s:.1f}x" if g and g.cpu_s > 0 else "–"
        print(
            f"| {r.rate_hz:g} epoch/s | {'on' if r.leds else 'off'} | {tracker} | {gpsd} | "
            f"{ratio} | {t.rss_kib / 1024:.1f} / {t.hwm_kib / 1024:.1f} MiB | "
            f"{t.open_ms:.0f} ms |"
        )


# -- import time -------------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_figures(runs: int) -> None:
    py = sys.executable
    out = subprocess.run(
        [py, "-X", "importtime", "-c", "import tracker.engine.service"],
        capture_output=True, text=True, check=True, cwd=lr.REPO,
    ).stderr  # fmt: skip
    by_package: dict[str, int] = defaultdict(int)
    modules = 0
    total_us = 0
    for line in out.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        self_us = int(m.group(1))
        modules += 1
        total_us += self_us
        by_package[m.group(4).split(".")[0]] += self_us
    top = sorted(by_package.items(), key=lambda kv: -kv[1])[:10]
    print(
        f'import: python -X importtime -c "import tracker.engine.service": {modules} modules, '
        f"self times sum to {total_us / 1000:.0f} ms"
    )
    print("  by top-level package (ms): " + ", ".join(f"{k} {v / 1000:.0f}" for k, v in top))

    def wall(*argv: str) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([py, *argv], capture_output=True, check=True, cwd=lr.REPO)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    base = wall("-c", "pass")
    service = wall("-c", "import tracker.engine.service")
    cli = wall("-m", "tracker", "run", "--help")
    print(
        f"  wall, median of {runs}: python -c pass {base:.0f} ms; import tracker.engine.service "
        f"{service:.0f} ms (+{service - base:.0f}); python -m tracker run --help {cli:.0f} ms "
        f"(+{cli - base:.0f})"
    )
    sys.stdout.flush()


async def main_async(args: argparse.Namespace) -> None:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES and c != "import"]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {[*CASES, 'import']}")
    gpsd = None if args.no_gpsd else lr.gpsd_path()
    print(f"machine: {lr.machine()}")
    print(f"command: {' '.join(sys.argv)}")
    first, _, last = (
        args.slice or (DEFAULT_SLICE if args.log == str(lr.LOG_1HZ) else ":")
    ).partition(":")
    log = lr.load_epochs(Path(args.log))[int(first or 0) : int(last) if last else None]
    print(
        f"log: {Path(args.log).name} epochs {first or 0}:{last}, {len(log)} epochs, re-stamped "
        "to wall time, played forth and back"
    )
    if gpsd is None:
        print(
            "NOTE: gpsd is not installed (apt-get install gpsd gpsd-clients): measuring the "
            "tracker alone, no ratio"
        )
    else:
        print(f"baseline: {lr.gpsd_version(gpsd)}, -N -n -b on a twin pty, one ?WATCH client")
    sys.stdout.flush()
    results = []
    for name in cases:
        if name == "import":
            import_figures(args.import_runs)
            continue
        rate_hz = CASES[name][0]
        seconds = args.seconds or (120.0 if rate_hz == 1 else 60.0)
        result = await run_case(name, seconds, args.warmup, log, gpsd)
        print_case(result)
        results.append(result)
    if results:
        print_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=0.0,
        help="measured window per case (default 120 at 1 Hz, 60 at 10 Hz)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of ride before the window opens (start, activity)",
    )
    parser.add_argument("--cases", default="1hz,10hz,1hz-leds,10hz-leds,import")
    parser.add_argument("--log", default=str(lr.LOG_1HZ), help="a real 1 Hz NMEA log")
    parser.add_argument(
        "--slice",
        default="",
        help=f"epochs FIRST:LAST of the log (default {DEFAULT_SLICE} of the default log, else all)",
    )
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument("--no-gpsd", action="store_true", help="the tracker alone")
    args = parser.parse_args()  # fmt: skip
    configure_logging("warning")  # the emulator's request lines would drown the figures
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
