"""Waiting for whichever of several things comes first: the engine's interruptible sleeps.

The uplink's pause that a start or a stop cuts short, its idle wait for points that a start or a
stop ends, the commit task's disk retry that a staging brings forward: each waits for the first
of two awaitables, here in one place because the way the rest is dismissed matters. The
helpers are cancelled, not awaited: awaiting them under a suppress of CancelledError would also
swallow a cancellation of the waiting task arriving then, and the task would outlive the
service's shutdown (``tests/integration/test_engine_uplink.py`` cancels one exactly then).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def first_of(*awaitables: Awaitable[object]) -> None:
    """Return when the first of ``awaitables`` is done; the others are cancelled."""
    helpers = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(helpers, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for helper in helpers:
            helper.cancel()
