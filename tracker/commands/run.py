"""`tracker run`: the service. (`--print-config`, common to every command, is in tracker.cli.)"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `tracker run --help` needs no settings
    import asyncio

    from tracker.config import Settings
    from tracker.engine.service import Service


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own."""


def main(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from tracker.engine.service import Service

    asyncio.run(_serve(Service(settings)))
    return 0


async def _serve(service: Service) -> None:
    import asyncio

    ready = asyncio.ensure_future(service.wait_ready())
    ready.add_done_callback(_freeze_startup_heap)
    try:
        await service.run()
    finally:
        ready.cancel()


def _freeze_startup_heap(ready: asyncio.Future[None]) -> None:
    """Once the service is up, what is alive (modules, classes, settings: most of the heap) stays
    alive until exit: move it out of the cyclic collector's sight (``gc.freeze``), after one
    collection so no garbage is kept with it. A collection then walks only what the ride made
    since: at 1 Hz the older generations' collections were ~10 % of the service's CPU, walking
    the same startup objects every time (issue 17). Only here, in the real service process (not
    in ``Service.run``, which tests run many times in one process)."""
    import gc

    if ready.cancelled():  # the service stopped before it was up
        return
    gc.collect()
    gc.freeze()
