"""`tracker run`: the service. `--print-config` shows the effective settings, secrets masked."""

from __future__ import annotations

import argparse
import json

from tracker.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (secrets masked) as JSON and exit",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.print_config:
        print(f"# settings from: {settings.source or 'built-in defaults (no config file)'}")
        print(json.dumps(settings.to_dict(mask_secrets=True), indent=2))
        return 0
    import asyncio

    from tracker.engine.service import Service

    asyncio.run(Service(settings).run())
    return 0
