"""A local Map My Tracks API v3 emulator: strict, with OAuth, faults and a page of tracks.

It runs the demo and every integration test, and lets a user try the tracker before making an
account. It implements ``shared/api/mmt-api-v3.md`` more strictly than the real service and can
misbehave on demand (latency, 5xx, dropped connections, lost replies, outages, short-lived
tokens). It never imports the client side (``tracker.mmt``, ``tracker.engine``): it is an
independent second party, so a misunderstanding shared by client and server cannot hide.

Entry points: :func:`running_emulator` (async context manager, tests and demo) and the
``tracker emulator`` command. See docs/emulator.md.
"""

from tracker.emulator.faults import FaultError, FaultSettings, faults_from, parse_fault_spec
from tracker.emulator.runner import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorHandle,
    running_emulator,
)

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "EmulatorHandle",
    "FaultError",
    "FaultSettings",
    "faults_from",
    "parse_fault_spec",
    "running_emulator",
]
