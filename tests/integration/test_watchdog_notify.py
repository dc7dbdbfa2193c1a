"""sd_notify against a real Unix datagram socket standing in for systemd's NOTIFY_SOCKET.

The key property: keep-alives come from the event loop, so a blocked loop sends none (and
systemd's WatchdogSec then restarts the service). No timed assertions: the "silence" check
blocks the loop itself until a receiver thread has waited well past several keep-alive periods.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker.bike.watchdog import Watchdog, watchdog_interval

PERIOD_USEC = 200_000  # WatchdogSec=0.2 s → a keep-alive every 0.1 s
SAFETY_S = 10.0


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    yield sock
    sock.close()


def _env(sock: socket.socket, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": sock.getsockname(), "WATCHDOG_USEC": str(PERIOD_USEC), **extra}


def _recv(sock: socket.socket, timeout: float = SAFETY_S) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def _drain(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096).decode())
    return out


def test_interval_is_half_the_watchdog_period() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 1) == 15.0
    assert watchdog_interval({}, 1) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 1) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}, 1) is None
    # systemd addressed the watchdog to another process (we are a child): not ours to feed
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, 2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "2"}, 2) == 0.5


def test_ready_status_and_stopping_reach_the_socket(notify_socket: socket.socket) -> None:
    wd = Watchdog(_env(notify_socket))
    assert wd.enabled
    wd.ready()
    wd.status("recording,\n12 points waiting")
    wd.stopping()
    assert _recv(notify_socket) == "READY=1"
    assert _recv(notify_socket) == "STATUS=recording, 12 points waiting"  # one line
    assert _recv(notify_socket) == "STOPPING=1"


def test_outside_systemd_everything_is_a_quiet_no_op() -> None:
    wd = Watchdog({})
    assert not wd.enabled
    wd.ready()
    wd.status("x")
    asyncio.run(asyncio.wait_for(wd.run(), SAFETY_S))  # returns at once
    assert wd.keepalives_sent == 0


def test_unreachable_notify_socket_is_reported_not_fatal(tmp_path: Path) -> None:
    wd = Watchdog({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens"), "WATCHDOG_USEC": "1000"})
    assert not wd.enabled
    wd.ready()


async def test_keepalives_flow_and_stop_while_the_loop_is_blocked(
    notify_socket: socket.socket,
) -> None:
    wd = Watchdog(_env(notify_socket))
    task = asyncio.create_task(wd.run())
    try:
        # Keep-alives arrive while the loop runs.
        for _ in range(3):
            assert await asyncio.to_thread(_recv, notify_socket) == "WATCHDOG=1"

        # Block the loop (the way a hung call would) until a receiver thread has listened for
        # five keep-alive periods and heard nothing.
        heard_during_block: list[str] = []
        silence_confirmed = threading.Event()

        def listen_while_blocked() -> None:
            _drain(notify_socket)  # sent before the block began
            with contextlib.suppress(TimeoutError):
                heard_during_block.append(_recv(notify_socket, timeout=5 * PERIOD_USEC / 1e6))
            silence_confirmed.set()

        listener = threading.Thread(target=listen_while_blocked)
        sent_before = wd.keepalives_sent
        listener.start()
        silence_confirmed.wait(SAFETY_S)  # this blocks the event loop thread
        listener.join(SAFETY_S)
        assert silence_confirmed.is_set()
        assert heard_during_block == []
        assert wd.keepalives_sent == sent_before

        # Unblocked: keep-alives resume.
        assert await asyncio.to_thread(_recv, notify_socket) == "WATCHDOG=1"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_stalled_receiver_never_blocks_the_loop(notify_socket: socket.socket) -> None:
    """Nobody reads the socket: sends fail fast (non-blocking) instead of hanging the loop."""
    wd = Watchdog(_env(notify_socket))
    for _ in range(5000):  # far more than a datagram queue holds
        wd.keepalive()
    assert wd.keepalives_sent == 5000


def test_abstract_socket_names_work(tmp_path: Path) -> None:
    name = f"tracker-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        wd = Watchdog({"NOTIFY_SOCKET": "@" + name})
        wd.ready()
        assert _recv(sock) == "READY=1"
    finally:
        sock.close()
