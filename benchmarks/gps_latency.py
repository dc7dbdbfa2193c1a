"""GPS latency benchmark: from an epoch's last byte on the wire to its fix, through a real pty.

Why: a fix used to leave only when the *next* epoch began (0.1-2 s late, and the last epoch
before a quiet line not at all). This measures the end-of-cycle rules against that old rule, in
the same run, on real recordings of three receivers (chosen because each epoch is one whole
burst, its timed sentence first):

* haicom-305N: Haicom HI-305N (SiRF-II), GGA ... RMC, VTG per burst;
* telit-he910: Telit HE910 GSM+GPS module, GGA, GLL, GSA, GSV, RMC, VTG;
* ublox-neo-m9n: u-blox NEO-M9N, RMC ... GLL, GST, ZDA, GBS (22 sentences a burst).

For each log and each rate (FakeReceiver ``rate_hz``: 1, 5, 10 epochs a second, whatever the
log's own times say) two FakeReceivers play the same epochs at once, each into its own pty, and
two readers run in one event loop:

* **new**: ``open_fix_stream(GpsSettings(device=<pty>), FilterSettings())``, the exact path the
  service takes (SerialSource with baud auto-detection, FixDecoder with end-of-cycle detection,
  FixStream's quiet-line rule);
* **old**: the same SerialSource and FixStream, but the decoder never learns a cycle's last
  sentence (``FixDecoder(learn_cycle_end=False)``, so no epoch closes on an ender) and the
  source reports no ``quiet_gap_s`` (so the quiet-line rule never fires): an epoch closes only
  when the next epoch's first timed sentence arrives, or at end of input,
  which is the rule before end-of-cycle detection.

FakeReceiver records ``time.monotonic()`` just before the writes of each epoch's first and
last byte (``epoch_times``; before, because the reader may run before the writer thread does
again); a reader stamps ``time.monotonic()`` when ``FixStream.verdicts()`` yields the epoch
(every epoch counts, accepted by the filter or not). Latency = fix time − last byte's stamp (an
upper bound by the write's own few µs). The last epoch of a run has no next epoch: the old rule
holds it until the stream ends (reported as "held", not in the percentiles); the new rule closes
it on the cycle's last sentence or the quiet line (its latency is in the "last" column).
"Late" counts fixes that came after the next epoch's first byte.

Run: ``.venv/bin/python benchmarks/gps_latency.py [--epochs 60] [--rates 1,5,10]``
(about 4 minutes with the defaults: 60 epochs at 1 Hz take a minute per log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import platform
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracker.config import FilterSettings, GpsSettings  # noqa: E402
from tracker.gps.fake import FakeReceiver  # noqa: E402
from tracker.gps.filters import FixFilter  # noqa: E402
from tracker.gps.nmea import FixDecoder  # noqa: E402
from tracker.gps.nmea.pacing import epochs, line_time_ms  # noqa: E402
from tracker.gps.replay import iter_log_lines  # noqa: E402
from tracker.gps.serial import SerialSource  # noqa: E402
from tracker.gps.stream import FixStream, configured_rollover_floor, open_fix_stream  # noqa: E402
from tracker.logs import configure_logging  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "gpsd"
LOGS = {
    "haicom-305N": DATA / "haicom-305N.log",
    "telit-he910": DATA / "telit-he910.log",
    "ublox-neo-m9n": DATA / "ublox-neo-m9n-nmea.log",
}
DAY_MS = 86_400_000
SETTLE_S = 1.5  # after the last epoch is written: time for the readers' last fixes


class NoQuietSource:
    """A SerialSource whose line never "goes quiet" for FixStream (``quiet_gap_s`` None)."""

    kind = "bytes"

    def __init__(self, inner: SerialSource) -> None:
        self.inner = inner

    @property
    def present(self) -> bool:
        return self.inner.present

    @property
    def quiet_gap_s(self) -> float | None:
        return None

    @property
    def name(self) -> str:
        return self.inner.name

    def chunks(self) -> AsyncIterator[bytes]:
        return self.inner.chunks()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    """One reader's results on one log at one rate."""

    latencies_s: list[float] = field(default_factory=list)
    late: int = 0  # fixes after the next epoch's first byte
    held: int = 0  # epochs written but not emitted when the run ended
    last_epoch_s: float | None = None  # the final epoch's latency (None: held)


def excerpt(path: Path, count: int) -> tuple[list[bytes], list[int]]:
    """The lines of the first ``count`` timed bursts (and any before them), and each timed
    burst's time of day (ms), indexed like FakeReceiver's epoch index."""
    lines: list[bytes] = []
    tods: list[int] = []
    for burst in epochs(iter_log_lines(path)):
        if burst.timed:
            if len(tods) >= count:
                break
            tod = next(t for t in map(line_time_ms, burst.lines) if t is not None)
            tods.append(tod)
        lines.extend(burst.lines)
    return lines, tods


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a measured latency)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def read_arrivals(stream: FixStream, arrivals: dict[int, float]) -> None:
    """Stamp each epoch's time of day with the monotonic time its fix came out."""
    gen = stream.verdicts()
    async with contextlib.aclosing(gen):
        async for fix, _reason in gen:
            arrivals.setdefault(round(fix.unix * 1000) % DAY_MS, time.monotonic())


def summarise(receiver: FakeReceiver, tods: list[int], arrivals: dict[int, float]) -> Run:
    run = Run()
    times = receiver.epoch_times
    for k, (index, _first, last) in enumerate(times):
        arrived = arrivals.get(tods[index])
        final = k == len(times) - 1
        if arrived is None:
            run.held += 1
            continue
        latency = arrived - last
        if final:
            run.last_epoch_s = latency
            continue
        run.latencies_s.append(latency)
        if arrived > times[k + 1][1]:
            run.late += 1
    return run


async def measure(path: Path, count: int, rate_hz: float) -> tuple[Run, Run, int]:
    """New and old readers on the same epochs at ``rate_hz``, each through its own pty."""
    lines, tods = excerpt(path, count)
    filters = FilterSettings()
    arrivals_new: dict[int, float] = {}
    arrivals_old: dict[int, float] = {}
    with (
        FakeReceiver(lines, rate_hz=rate_hz) as rx_new,
        FakeReceiver(lines, rate_hz=rate_hz) as rx_old,
    ):
        gps_new = GpsSettings(device=str(rx_new.path))
        new = open_fix_stream(gps_new, filters)
        gps_old = GpsSettings(device=str(rx_old.path))
        old = FixStream(
            NoQuietSource(SerialSource(gps_old.device, gps_old.baud)),
            FixFilter(filters.max_hdop, filters.max_speed_mps),
            decoder=FixDecoder(
                rollover_floor=configured_rollover_floor(gps_old), learn_cycle_end=False
            ),
        )
        tasks = [
            asyncio.create_task(read_arrivals(new, arrivals_new)),
            asyncio.create_task(read_arrivals(old, arrivals_old)),
        ]
        while not (rx_new.done.is_set() and rx_old.done.is_set()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(SETTLE_S)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        await new.aclose()
        await old.aclose()
        return (
            summarise(rx_new, tods, arrivals_new),
            summarise(rx_old, tods, arrivals_old),
            len(rx_new.epoch_times),
        )


def ms(value: float) -> str:
    return f"{value * 1000:7.1f}"


def report_line(label: str, rate: float, new: Run, old: Run, written: int) -> None:
    if not new.latencies_s or not old.latencies_s:
        print(f"{label:<14} {rate:>4g} Hz  {written:>3} epochs  (too few fixes to measure)")
        return
    n50, n99 = percentile(new.latencies_s, 50), percentile(new.latencies_s, 99)
    o50, o99 = percentile(old.latencies_s, 50), percentile(old.latencies_s, 99)
    last = "held" if new.last_epoch_s is None else f"{new.last_epoch_s * 1000:.0f}"
    old_last = "held" if old.last_epoch_s is None else f"{old.last_epoch_s * 1000:.0f}"
    print(f"{label:<14} {rate:>4g} Hz {written:>4} {ms(n50)} {ms(n99)} {ms(max(new.latencies_s))}"
          f" {ms(o50)} {ms(o99)} {o50 / n50:7.0f}x {o99 / n99:6.0f}x"
          f" {new.late:>3}/{old.late:<3} {last:>5}/{old_last:<5}")  # fmt: skip


async def run(names: Sequence[str], count: int, rates: Sequence[float]) -> bool:
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}  {platform.node()}  {platform.machine()}  "
          f"Python {platform.python_version()}  epochs per run: {count}")  # fmt: skip
    print(f"{'receiver':<14} {'rate':>7} {'ep':>4} {'new p50':>7} {'p99':>7} {'max':>7}"
          f" {'old p50':>7} {'p99':>7} {'p50 old/new':>8} {'p99':>6}"
          f" {'late n/o':>7} {'last ms n/o':>11}")  # fmt: skip
    pooled: dict[float, tuple[Run, Run]] = {rate: (Run(), Run()) for rate in rates}
    for rate in rates:
        for name in names:
            new, old, written = await measure(LOGS[name], count, rate)
            report_line(name, rate, new, old, written)
            for total, part in zip(pooled[rate], (new, old), strict=True):
                total.latencies_s += part.latencies_s
                total.late += part.late
                total.held += part.held
    ok = True
    print()
    for rate, (new, old) in pooled.items():
        if not new.latencies_s or not old.latencies_s:
            ok = False
            continue
        n50, n99 = percentile(new.latencies_s, 50), percentile(new.latencies_s, 99)
        o50, o99 = percentile(old.latencies_s, 50), percentile(old.latencies_s, 99)
        print(f"all receivers {rate:>4g} Hz: new p50 {n50 * 1000:.1f} ms, p99 {n99 * 1000:.1f} ms"
              f" | old p50 {o50 * 1000:.1f} ms, p99 {o99 * 1000:.1f} ms"
              f" | old/new p50 {o50 / n50:.0f}x, p99 {o99 / n99:.0f}x"
              f" | later than the next epoch's start: new {new.late}, old {old.late}"
              f" | held at the end: new {new.held}, old {old.held}")  # fmt: skip
        if rate == 1.0:
            met = n50 <= 0.050 and n99 <= 0.200
            ok &= met
            print(f"  goal at 1 Hz (p50 <= 50 ms, p99 <= 200 ms): {'met' if met else 'MISSED'}")
        if rate == 10.0:
            met = new.late == 0
            ok &= met
            print(f"  goal at 10 Hz (no fix after the next epoch's start): "
                  f"{'met' if met else 'MISSED'}")  # fmt: skip
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=60, help="epochs per log and rate")
    parser.add_argument("--rates", default="1,5,10", help="comma-separated epochs a second")
    parser.add_argument("--logs", default=",".join(LOGS), help="comma-separated, of: %(default)s")
    args = parser.parse_args(argv)
    names = [n for n in args.logs.split(",") if n]
    unknown = [n for n in names if n not in LOGS]
    if unknown:
        parser.error(f"unknown log(s): {', '.join(unknown)}")
    rates = [float(r) for r in args.rates.split(",") if r]
    configure_logging("warning")  # a receiver connecting is not news here; a problem is
    ok = asyncio.run(run(names, args.epochs, rates))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
