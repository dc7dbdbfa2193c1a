"""`tracker login`: log in to Map My Tracks (OAuth 2) and store the tokens safely.

Opens a browser (or, with ``--no-browser`` / on a headless Pi, prints the address and explains
how to finish from a phone or laptop), waits for the approval on a one-shot callback server on
127.0.0.1:[api] redirect_port, and stores the token pair in the data dir (0600, atomic).
See docs/login.md.
"""

from __future__ import annotations

import argparse
import sys

from tracker.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-browser", action="store_true",
        help="do not try to open a browser: print the address (headless Pi); the final "
        "redirect address can be pasted back here",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS",
        help="give up waiting for the approval after this long (default 600)",
    )  # fmt: skip


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from tracker.errors import ConfigError
    from tracker.mmt.login import login
    from tracker.mmt.tokens import TokenStore

    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    store = TokenStore.in_dir(settings.storage.resolved_data_dir())
    run = login(
        settings.api,
        store,
        open_browser=not args.no_browser,
        out=sys.stdout,
        paste_input=sys.stdin,
        timeout_s=args.timeout,
    )
    record = asyncio.run(run)
    expires = record.get("expires_in")
    lifetime = f"; the access token is valid for {expires:g} s and renews itself" if expires else ""
    print(f"Logged in{lifetime}. Tokens stored in {store.path} (mode 0600).")
    return 0
