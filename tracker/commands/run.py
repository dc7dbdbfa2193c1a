"""`tracker run`: the service. (`--print-config`, common to every command, is in tracker.cli.)"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `tracker run --help` needs no settings
    from tracker.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from tracker.engine.service import Service

    asyncio.run(Service(settings).run())
    return 0
