"""`tracker fixes FILE [--json]`: parse an NMEA log, print one accepted fix per line.

With ``--json`` each line is a gpsd-style TPV object (``time`` ISO 8601 UTC, ``mode``, ``lat``,
``lon``, ``altMSL`` m, ``speed`` m/s, ``track`` deg, plus ``sats`` and ``hdop``). The summary
(sentences, bad checksums, fixes, drops by reason) goes to stderr so stdout stays clean for
pipes. ``--all`` also prints the epochs the filters dropped, with the reason.

A live input is a monitor, as ``gpspipe`` is for gpsd: ``-`` when standard input is a pipe or a
terminal, or a serial device (``/dev/ttyACM0``; read like the service does: baud auto unless
``--baud``, hot-plug). Each fix is printed and flushed as its epoch ends (see
:class:`tracker.gps.stream.FixStream`); Ctrl-C ends it with the summary and exit status 130.
A log file (or a file redirected to standard input) is read whole, as fast as possible.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from tracker.config import Settings
from tracker.errors import ConfigError, GpsInputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from tracker.gps.filters import FixFilter
    from tracker.gps.nmea import FixDecoder
    from tracker.gps.stream import ByteSource
    from tracker.model import Fix


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="NMEA log file, '-' for standard input, or a serial device (live, until Ctrl-C)",
    )
    parser.add_argument("--json", action="store_true", help="one gpsd TPV JSON object per line")
    parser.add_argument(
        "--all", action="store_true", help="also print dropped epochs, with the drop reason"
    )
    parser.add_argument("--max-hdop", type=float, help="override [filters] max_hdop")
    parser.add_argument("--max-speed", type=float, help="override [filters] max_speed_mps (m/s)")
    parser.add_argument(
        "--baud", default="auto", help="serial device speed (default: auto, as the service)"
    )
    parser.add_argument(
        "--engine",
        choices=("fast", "pynmea2"),
        default="fast",
        help="field parser: the fast path (default) or pynmea2 (the slower reference)",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from tracker.gps.filters import FixFilter
    from tracker.gps.nmea import FixDecoder
    from tracker.gps.replay import iter_log_blocks
    from tracker.gps.tpv import fix_to_tpv

    max_hdop = settings.filters.max_hdop if args.max_hdop is None else args.max_hdop
    max_speed = settings.filters.max_speed_mps if args.max_speed is None else args.max_speed
    if max_hdop < 0 or max_speed <= 0:
        raise ConfigError("--max-hdop must be ≥ 0 and --max-speed > 0")
    decoder = FixDecoder(engine=args.engine)
    fix_filter = FixFilter(max_hdop, max_speed)
    out = sys.stdout

    def emit(fixes: list[Fix]) -> None:
        emit_verdicts([(fix, fix_filter.accept(fix)) for fix in fixes])

    def emit_verdicts(verdicts: list[tuple[Fix, str | None]]) -> None:
        lines = []
        for fix, reason in verdicts:
            if reason is not None and not args.all:
                continue
            if args.json:
                tpv = fix_to_tpv(fix)
                if reason is not None:
                    tpv["drop"] = reason
                lines.append(json.dumps(tpv, separators=(",", ":")))
            else:
                lines.append(_text(fix, reason))
        if lines:
            out.write("\n".join(lines) + "\n")

    source = _live_source(args.file, args.baud)
    status = 0
    try:
        if source is not None:
            status = _monitor(source, decoder, fix_filter, emit_verdicts)
        else:
            blocks = _stdin_blocks() if args.file == "-" else iter_log_blocks(args.file)
            for blob in blocks:
                emit(decoder.feed(blob))
            emit(decoder.flush())
        out.flush()
    except BrokenPipeError:  # `tracker fixes log | head`: the reader has seen enough
        sys.stderr.close()
        return 0
    except IsADirectoryError:
        raise GpsInputError(f"{args.file}: is a directory, not a log file") from None
    stats = decoder.stats
    drops = ", ".join(f"{k} {v}" for k, v in fix_filter.drops.items() if v) or "none"
    print(
        f"{args.file}: {stats.sentences} sentences ({stats.bad_checksum} bad checksums, "
        f"{stats.garbage} garbage lines, {stats.skipped} not used), {stats.epochs} epochs, "
        f"{stats.fixes} fixes, {fix_filter.accepted} accepted; dropped: {drops}"
        + (f"; {stats.undated} fixes without a date" if stats.undated else "")
        + (f"; {stats.rollover_corrected} dates corrected for GPS week rollover"
           if stats.rollover_corrected else ""),
        file=sys.stderr,
    )  # fmt: skip
    return status


def _live_source(file: str, baud: str) -> ByteSource | None:
    """The live source for ``file``, or None for a log file read whole."""
    import os
    import stat

    if file == "-":
        if stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):
            return None
        from tracker.gps.pipe import PipeSource

        return PipeSource(sys.stdin.fileno())
    try:
        is_device = stat.S_ISCHR(os.stat(file).st_mode)
    except OSError:
        is_device = file.startswith("/dev/")  # not plugged in yet: wait for it, as the service
    if not is_device:
        return None
    from tracker.gps.serial import SerialSource

    if baud != "auto" and not baud.isdigit():
        raise ConfigError(f"--baud: expected a number or auto, not {baud!r}")
    return SerialSource(file, int(baud) if baud.isdigit() else "auto")


def _monitor(
    source: ByteSource,
    decoder: FixDecoder,
    fix_filter: FixFilter,
    emit: Callable[[list[tuple[Fix, str | None]]], None],
) -> int:
    """Print each epoch as it ends until the source ends (0) or Ctrl-C (130)."""
    import asyncio
    import contextlib

    from tracker.gps.stream import FixStream

    async def run() -> None:
        stream = FixStream(source, fix_filter, decoder=decoder)
        verdicts = stream.verdicts()
        async with contextlib.aclosing(verdicts):
            async for verdict in verdicts:
                emit([verdict])
                sys.stdout.flush()
        await stream.aclose()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.stdout.flush()
        return 130
    return 0


def _stdin_blocks() -> list[bytes]:
    data = sys.stdin.buffer.read()
    return [b"\n".join(line for line in data.split(b"\n") if not line.startswith(b"#"))]


def _text(fix: Fix, reason: str | None) -> str:
    from tracker.model import FixMode

    millis = round(fix.unix * 1000)
    parts = [fix.time.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"]
    if fix.mode >= FixMode.FIX_2D:
        parts.append(f"{fix.lat:.6f} {fix.lon:.6f} {fix.mode.name.removeprefix('FIX_')}")
    else:
        parts.append("no fix")
    if fix.alt_msl is not None:
        parts.append(f"alt {fix.alt_msl:.1f} m")
    if fix.speed_mps is not None:
        parts.append(f"speed {fix.speed_mps:.2f} m/s")
    if fix.course_deg is not None:
        parts.append(f"track {fix.course_deg:.1f}°")
    if fix.sats is not None:
        parts.append(f"sats {fix.sats}")
    if fix.hdop is not None:
        parts.append(f"hdop {fix.hdop:.1f}")
    if reason is not None:
        parts.append(f"DROPPED {reason}")
    return "  ".join(parts)
