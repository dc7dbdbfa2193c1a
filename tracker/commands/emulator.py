"""`tracker emulator`: run the local Map My Tracks API v3 emulator as a real process.

The first stdout lines are machine-readable and flushed at once, so a test or script that spawns
the process can read where it listens (``--port 0`` picks a free port)::

    base_url=http://127.0.0.1:PORT/api3
    client_id=...
    client_secret=...
    inspect_url=http://127.0.0.1:PORT/_emulator/

SIGTERM or SIGINT stops it cleanly (saving ``--state-file`` first).
"""

from __future__ import annotations

import argparse
import sys

from tracker.config import Settings
from tracker.errors import ConfigError, TrackerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, default=8080,
                        help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--faults", metavar="SPEC", default=None,
        help='misbehave, e.g. "latency=0.2,error_rate=0.1,drop_rate=0.05,lost_reply_rate=0.1,'
             'token_ttl=30,seed=7" (change at run time: POST /_emulator/faults)',
    )
    parser.add_argument("--state-file", metavar="PATH", default=None,
                        help="keep activities and tokens across restarts in this JSON file")
    parser.add_argument("--auto-approve", action="store_true",
                        help="approve OAuth logins at once instead of showing an Approve page")
    parser.add_argument("--client-id", default=None, help="OAuth client id (default: the demo id)")
    parser.add_argument("--client-secret", default=None,
                        help="OAuth client secret (default: the demo secret)")
    parser.add_argument("--redirect-uri", action="append", default=[], metavar="URI",
                        help="also accept this non-loopback redirect URI (repeatable)")
    parser.add_argument("--token-ttl", type=int, default=None, metavar="SECONDS",
                        help="access-token lifetime (default 3600)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from tracker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FaultError, faults_from
    from tracker.emulator.runner import serve_until_signalled

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port (0..65535)")
    if args.token_ttl is not None and args.token_ttl < 1:
        raise ConfigError("--token-ttl must be at least 1 second")
    try:
        faults_from(args.faults)
    except FaultError as exc:
        raise ConfigError(f"--faults: {exc}") from None

    def announce(lines: list[str]) -> None:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()

    try:
        asyncio.run(serve_until_signalled(
            host=args.host, port=args.port, auto_approve=args.auto_approve, faults=args.faults,
            client_id=args.client_id or DEMO_CLIENT_ID,
            client_secret=args.client_secret or DEMO_CLIENT_SECRET,
            state_file=args.state_file, token_ttl=args.token_ttl,
            redirect_uris=tuple(args.redirect_uri), announce=announce,
        ))
    except OSError as exc:
        raise TrackerError(f"emulator cannot listen on {args.host}:{args.port}: {exc}") from exc
    return 0
