"""`tracker demo`: a whole ride against the local emulator, end to end, with no hardware."""

from __future__ import annotations

import argparse

from tracker.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        metavar="FILE",
        help="NMEA log to ride (default: a car ride from ../shared/data/tracks/, else its "
        "excerpt bundled in tracker/data/)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=12.0,
        help="how many times faster than real time the receiver plays (default 12)",
    )
    parser.add_argument(
        "--ride-seconds",
        type=float,
        default=55.0,
        help="wall-clock seconds between the start and the stop press (default 55)",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import sys

    from tracker.demo import find_track, run_demo
    from tracker.engine.service import Service

    track = find_track(args.track)
    ride = max(30.0, args.ride_seconds)
    asyncio.run(
        run_demo(
            settings,
            Service,
            track=track,
            speed=args.speed,
            ride_s=ride,
            outage_at_s=ride * 0.2,
            lost_reply_at_s=ride * 0.75,
            keep_open=sys.stdin.isatty() and sys.stdout.isatty(),
        )
    )
    return 0
