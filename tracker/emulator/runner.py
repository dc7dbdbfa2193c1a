"""Start and stop a real emulator server: in-process for tests and the demo, or as a process.

:func:`running_emulator` binds a real aiohttp server on loopback inside the current event loop
and yields an :class:`EmulatorHandle`; ``tracker emulator`` uses :func:`serve_forever`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from tracker.emulator.faults import FaultSettings, faults_from
from tracker.emulator.server import API_PREFIX, Emulator, Sleep
from tracker.emulator.store import StoredActivity

AUTOSAVE_INTERVAL_S = 1.0
DEMO_CLIENT_ID = "tracker-demo"
DEMO_CLIENT_SECRET = "demo-secret-not-for-production"  # noqa: S105 - a published demo credential


class EmulatorHandle:
    """What a test or the demo holds while the emulator runs."""

    def __init__(self, emulator: Emulator, host: str, port: int) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self.root_url = f"http://{shown}:{port}"
        self.base_url = f"{self.root_url}{API_PREFIX}"
        self.authorize_url = f"{self.base_url}/oauth/authorize"
        self.token_url = f"{self.base_url}/oauth/token"
        self.revoke_url = f"{self.base_url}/oauth/revoke"
        self.inspect_url = f"{self.root_url}/_emulator/"

    @property
    def client_id(self) -> str:
        return str(self.emulator.auth.client.client_id)

    @property
    def client_secret(self) -> str:
        return str(self.emulator.auth.client.client_secret)

    # -- faults and time --------------------------------------------------------------------------

    @property
    def faults(self) -> FaultSettings:
        return self.emulator.faults

    def set_faults(self, **changes: Any) -> FaultSettings:
        """Merge faults into the current ones, e.g. ``set_faults(down=True)``; returns them all."""
        return self.emulator.set_faults(changes)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (access tokens expire)."""
        self.emulator.advance_clock(seconds)

    # -- tokens -----------------------------------------------------------------------------------

    def issue_tokens(self) -> dict[str, Any]:
        """A token pair as the token endpoint would answer it, without the browser dance."""
        return self.emulator.auth.issue_tokens()

    # -- activities -------------------------------------------------------------------------------

    @property
    def activities(self) -> list[StoredActivity]:
        """Every stored activity, oldest first (live objects: read, do not modify)."""
        return list(self.emulator.store.activities.values())

    def activity(self, activity_id: int) -> StoredActivity:
        found = self.emulator.store.get(activity_id)
        if found is None:
            raise KeyError(f"no activity {activity_id}")
        return found

    def activity_by_title(self, title: str) -> StoredActivity | None:
        return self.emulator.store.by_title(title)

    def snapshot(self) -> list[dict[str, Any]]:
        """The same JSON as ``GET /_emulator/activities``."""
        return self.emulator.store.as_list()

    def reset(self) -> None:
        """Forget every activity and request count; tokens stay valid."""
        self.emulator.reset()

    def request_counts(self) -> dict[str, dict[str, int]]:
        """Counts by endpoint and outcome (``GET /_emulator/requests``)."""
        return self.emulator.requests_json()


@asynccontextmanager
async def running_emulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    auto_approve: bool = True,
    faults: str | Mapping[str, Any] | None = None,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
    state_file: str | os.PathLike[str] | None = None,
    token_ttl: int | None = None,
    redirect_uris: tuple[str, ...] = (),
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[EmulatorHandle]:
    """Run a real emulator server on ``host:port`` (0 = a free port) in the current loop.

    ``faults`` is a spec string or mapping (see :mod:`tracker.emulator.faults`); ``clock`` and
    ``sleep`` can be replaced so that token expiry and latency are testable without waiting.
    With ``state_file`` the data is loaded at start and saved when the block exits.
    """
    emulator = Emulator(
        client_id=client_id, client_secret=client_secret, auto_approve=auto_approve,
        faults=faults_from(faults), token_ttl=token_ttl, extra_redirect_uris=redirect_uris,
        state_file=state_file, clock=clock, sleep=sleep,
    )
    runner = web.AppRunner(emulator.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    autosave: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = _bound_port(runner, port)
        if emulator.state_file is not None:
            autosave = asyncio.create_task(_autosave(emulator), name="emulator-autosave")
        yield EmulatorHandle(emulator, host, bound_port)
    finally:
        if autosave is not None:
            autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await autosave
        await runner.cleanup()
        emulator.save_state()


async def _autosave(emulator: Emulator) -> None:
    """Save the state file within a second of a change, so even a SIGKILL loses little."""
    from tracker.logs import get_logger

    while True:
        await asyncio.sleep(AUTOSAVE_INTERVAL_S)
        if emulator.dirty:
            try:
                emulator.save_state()
            except OSError as exc:
                get_logger("emulator").warning("state file not saved", error=str(exc))


def _is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


async def serve_until_signalled(
    *,
    announce: Callable[[list[str]], None],
    **options: Any,
) -> None:
    """Run until SIGTERM/SIGINT (the ``tracker emulator`` process); state is saved on exit."""
    import signal

    from tracker.logs import get_logger

    log = get_logger("emulator")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(**options) as emu:
        announce([
            f"base_url={emu.base_url}",
            f"client_id={emu.client_id}",
            f"client_secret={emu.client_secret}",
            f"inspect_url={emu.inspect_url}",
        ])
        log.info("emulator listening", base_url=emu.base_url, faults=emu.faults.as_dict(),
                 auto_approve=emu.emulator.auto_approve)
        if not _is_loopback_host(emu.host):
            log.warning("emulator reachable beyond this machine: plain HTTP, demo credentials",
                        host=emu.host)
        await stop.wait()
        log.info("emulator stopping")
