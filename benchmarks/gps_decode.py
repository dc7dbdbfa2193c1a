"""GPS input benchmark: bytes → accepted fixes, end to end through a real pseudo-terminal.

Measured in one run on one long real log (default: the 3-hour Reno/Tahoe drive, 53 628
sentences), each as CPU time of the thread doing the work:

1. tracker end to end: FakeReceiver writes the log into a pty as fast as it is read;
   SerialSource reads blocks (non-blocking os.read), FixDecoder parses, FixFilter filters.
2. tracker decode only: the same bytes from memory through FixDecoder + FixFilter.
3. baseline: pynmea2.parse() on every line (from memory, no reading, no epoch assembly).
4. tracker with engine="pynmea2" (pynmea2 parses the fix sentences, our framing around it).
5. baseline: pyserial readline() through the pty (reading only, no parsing), on a subset.

Also: memory (tracemalloc peak while streaming, retained size of fixes and a ring buffer).
Run: .venv/bin/python benchmarks/gps_decode.py [LOG]
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracker.gps.fake import FakeReceiver  # noqa: E402
from tracker.gps.filters import FixFilter  # noqa: E402
from tracker.gps.nmea import FixDecoder  # noqa: E402
from tracker.gps.replay import iter_log_blocks  # noqa: E402
from tracker.gps.ring import RingBuffer  # noqa: E402
from tracker.gps.serial import SerialSource  # noqa: E402
from tracker.model import Fix  # noqa: E402
from tracker.retry import RetryPolicy  # noqa: E402

DEFAULT_LOG = REPO.parent / "shared" / "data" / "tracks" / "NmeaParser__NmeaSampleData.txt"
READLINE_LINES = 5000


def line(label: str, sentences: int, cpu: float, note: str = "") -> float:
    rate = sentences / cpu
    print(f"{label:<52} {rate:>10,.0f} sentences/CPU-s {cpu * 1e6 / sentences:>7.2f} µs/sentence"
          f"{note}")  # fmt: skip
    return rate


async def end_to_end(path: Path, total_bytes: int) -> tuple[FixDecoder, FixFilter, float, int]:
    decoder = FixDecoder()
    fix_filter = FixFilter(10.0, 90.0)
    fixes = 0
    with FakeReceiver(path, speed=0) as receiver:
        fast = RetryPolicy(initial_s=0.01, max_s=10.0, jitter=0)
        source = SerialSource(str(receiver.path), 4800, retry=fast)
        start = time.thread_time()
        chunks = source.chunks()
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                for fix in decoder.feed(chunk):
                    fixes += fix_filter.accept(fix) is None
                if decoder.stats.bytes >= total_bytes:
                    break
        for fix in decoder.flush():
            fixes += fix_filter.accept(fix) is None
        cpu = time.thread_time() - start
        ratio = receiver.gps_ratio
    print(f"  (pty: {decoder.stats.bytes:,} bytes, GPS time played {ratio:,.0f}x real time)")
    return decoder, fix_filter, cpu, fixes


def decode_only(data: bytes, engine: str = "fast") -> tuple[FixDecoder, float]:
    decoder = FixDecoder(engine=engine)  # type: ignore[arg-type]
    fix_filter = FixFilter(10.0, 90.0)
    start = time.process_time()
    for i in range(0, len(data), 4096):
        for fix in decoder.feed(data[i : i + 4096]):
            fix_filter.accept(fix)
    for fix in decoder.flush():
        fix_filter.accept(fix)
    return decoder, time.process_time() - start


def pynmea2_every_line(data: bytes, fields: bool) -> tuple[int, float]:
    """pynmea2.parse() on every line (it checks the checksum); with ``fields``, also read
    what a fix needs from the fix sentences (pynmea2 converts fields lazily, on access)."""
    import pynmea2

    start = time.process_time()
    lines = data.decode("ascii", "replace").splitlines()
    for text in lines:
        try:
            msg = pynmea2.parse(text)
        except (pynmea2.ParseError, ValueError, AttributeError):
            continue
        if not fields:
            continue
        kind = getattr(msg, "sentence_type", "")
        try:
            if kind == "RMC":
                _ = (msg.timestamp, msg.datestamp, msg.status, msg.latitude, msg.longitude,
                     msg.spd_over_grnd, msg.true_course)  # fmt: skip
            elif kind == "GGA":
                _ = (msg.timestamp, msg.gps_qual, msg.latitude, msg.longitude, msg.num_sats,
                     msg.horizontal_dil, msg.altitude)  # fmt: skip
            elif kind == "GSA":
                _ = (msg.mode_fix_type, msg.hdop)
            elif kind == "GLL":
                _ = (msg.timestamp, msg.status, msg.latitude, msg.longitude)
        except (ValueError, TypeError, AttributeError):
            pass
    return len(lines), time.process_time() - start


def readline_through_pty(lines: list[bytes]) -> tuple[int, float]:
    import serial

    with FakeReceiver(lines, speed=0) as receiver:
        port = serial.Serial(str(receiver.path), 4800, timeout=1)
        start = time.thread_time()
        count = 0
        while count < len(lines):
            if port.readline():
                count += 1
        cpu = time.thread_time() - start
        port.close()
    return count, cpu


def memory(data: bytes) -> None:
    tracemalloc.start()
    decoder = FixDecoder()
    ring: RingBuffer[Fix] = RingBuffer(600)
    for i in range(0, len(data), 4096):
        for fix in decoder.feed(data[i : i + 4096]):
            ring.append(fix)
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    fixes = ring.snapshot()
    per_fix = _fix_size(fixes[len(fixes) // 2])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"memory: streaming the whole log through decoder + ring of 600 fixes: peak "
          f"{streaming_peak / 1024:,.0f} KiB traced; one Fix ≈ {per_fix} B (ring of 600 ≈ "
          f"{600 * per_fix / 1024:,.0f} KiB); process max RSS {rss / 1024:,.0f} MiB "
          f"(Python + pynmea2 + pyserial + this benchmark)")  # fmt: skip


def _fix_size(fix: Fix) -> int:
    size = sys.getsizeof(fix) + sys.getsizeof(fix.time)
    for value in (fix.unix, fix.lat, fix.lon, fix.alt_msl, fix.speed_mps, fix.course_deg,
                  fix.hdop):  # fmt: skip
        if value is not None:
            size += sys.getsizeof(value)
    return size


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_LOG
    data = b"".join(iter_log_blocks(path))
    lines = data.splitlines(keepends=True)
    print(f"log: {path.name}, {len(data):,} bytes, {len(lines):,} lines")

    decoder, _filter, cpu, accepted = asyncio.run(end_to_end(path, len(data)))
    sentences = decoder.stats.sentences
    ours = line("tracker end to end (pty → blocks → decoder → filter)", sentences, cpu,
                f"  [{decoder.stats.epochs} epochs, {accepted} accepted]")  # fmt: skip
    mem_decoder, mem_cpu = decode_only(data)
    mem = line("tracker decode + filter only (bytes in memory)", mem_decoder.stats.sentences,
               mem_cpu)  # fmt: skip
    count, py_cpu = pynmea2_every_line(data, fields=True)
    base = line("baseline: pynmea2 parse() every line + read fix fields", count, py_cpu)
    count, lazy_cpu = pynmea2_every_line(data, fields=False)
    lazy = line("baseline: pynmea2 parse() every line, fields untouched", count, lazy_cpu)
    ref_decoder, ref_cpu = decode_only(data, "pynmea2")
    line("tracker with engine=pynmea2 (reference path)", ref_decoder.stats.sentences, ref_cpu)
    assert ref_decoder.stats.as_dict() == mem_decoder.stats.as_dict()
    read_count, read_cpu = readline_through_pty(lines[:READLINE_LINES])
    readline_rate = line(f"baseline: pyserial readline() through the pty ({READLINE_LINES} lines)",
                         read_count, read_cpu, "  [reading only]")  # fmt: skip
    print(
        f"ratios: decode vs pynmea2 with fields {mem / base:.2f}x, vs lazy parse() alone "
        f"{mem / lazy:.2f}x; end to end (with reading) vs pynmea2 with fields (without "
        f"reading) {ours / base:.2f}x; vs readline() reading alone {ours / readline_rate:.0f}x"
    )
    per_second_10hz = 10 * sentences / decoder.stats.epochs
    share = per_second_10hz / ours
    print(f"at 10 Hz with this log's {sentences / decoder.stats.epochs:.0f} sentences/epoch: "
          f"{share * 100:.3f} % of one core here; assuming a Pi Zero core is 15-25x slower for "
          f"CPython (not measured): {share * 15 * 100:.2f}-{share * 25 * 100:.2f} %")  # fmt: skip
    memory(data)


if __name__ == "__main__":
    main()
