"""`tracker export`: write a recorded activity from the outbox as a GPX file (gpxpy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracker.config import Settings
from tracker.errors import ConfigError, StorageError, TrackerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the data dir holding the outbox (default: [storage] data_dir)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--activity", type=int, metavar="N", help="local activity number")
    which.add_argument("--title", help="the activity's title")
    parser.add_argument("--list", action="store_true", help="list the stored activities and exit")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of standard output"
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    import sqlite3

    from tracker.mmt.gpx import build_gpx
    from tracker.storage.db import read_stored

    data_dir = Path(args.data_dir) if args.data_dir else settings.storage.resolved_data_dir()
    try:
        stored = read_stored(data_dir)
    except FileNotFoundError as exc:
        raise TrackerError(f"{exc}: nothing recorded yet (or wrong --data-dir)") from None
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the outbox in {data_dir}: {exc}") from None
    if args.list:
        for rec, points, _hr in stored:
            a = rec.activity
            print(
                f"{a.local_id}\t{a.state.value}\t{len(points)} points\t"
                f"remote {a.remote_id or '-'}\t{a.title}"
            )
        return 0
    if not stored:
        raise TrackerError(f"the outbox in {data_dir} holds no activity")
    if args.activity is not None:
        chosen = [s for s in stored if s[0].local_id == args.activity]
    elif args.title is not None:
        chosen = [s for s in stored if s[0].activity.title == args.title]
    else:
        chosen = [stored[-1]]
    if not chosen:
        raise ConfigError("no such activity; `tracker export --list` shows them")
    rec, points, hr = chosen[0]
    if not points:
        raise TrackerError(f"activity {rec.activity.title!r} has no points")
    gpx = build_gpx(points, rec.activity.title, hr)
    if args.output:
        Path(args.output).write_text(gpx, encoding="utf-8")
        print(
            f"wrote {len(points)} points of {rec.activity.title!r} to {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(gpx)
    return 0
