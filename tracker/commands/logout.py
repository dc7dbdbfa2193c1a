"""`tracker logout`: revoke the stored login at the server (RFC 7009) and delete the tokens.

If the server cannot be reached the tokens are kept (so the revocation can be retried) unless
``--forget`` is given.
"""

from __future__ import annotations

import argparse

from tracker.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forget", action="store_true",
        help="delete the local tokens even when the server cannot be told to revoke them",
    )  # fmt: skip


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from tracker.mmt.login import logout
    from tracker.mmt.tokens import TokenStore

    store = TokenStore.in_dir(settings.storage.resolved_data_dir())
    _was_logged_in, message = asyncio.run(logout(settings.api, store, forget=args.forget))
    print(message[0].upper() + message[1:] + ".")
    return 0
