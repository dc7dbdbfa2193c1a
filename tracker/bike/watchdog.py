"""systemd notifications: READY=1, STATUS=…, and WATCHDOG=1 keep-alives from the event loop.

The unit runs with ``Type=notify`` and ``WatchdogSec=``. systemd passes the watchdog period in
``WATCHDOG_USEC``; :meth:`Watchdog.run` is an asyncio task that sends ``WATCHDOG=1`` every half
period. Because the keep-alive is sent *by the event loop*, a loop that is blocked (a hung
syscall, a busy loop, a deadlock) stops sending, systemd kills the process after
``WatchdogSec`` and ``Restart=always`` starts it again; the durable outbox means nothing is lost.

Messages go through :class:`sdnotify.SystemdNotifier` (the socket named by ``NOTIFY_SOCKET``),
set non-blocking so a full notify queue can never stall the loop. Outside systemd (no
``NOTIFY_SOCKET``) every call is a no-op and :meth:`run` returns at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from tracker.logs import get_logger

log = get_logger("watchdog")


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between keep-alives (half of WATCHDOG_USEC), or None when no watchdog is asked.

    ``WATCHDOG_PID``, when set, must be this process (systemd sets it for the main process only).
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    return int(usec) / 1_000_000 / 2


class Watchdog:
    """sd_notify for `tracker run`: ``ready()``, ``status(text)``, ``stopping()``, ``run()``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.interval_s = watchdog_interval(env, os.getpid())
        self.keepalives_sent = 0
        self._notifier = None
        if env.get("NOTIFY_SOCKET"):
            import sdnotify

            # sdnotify reads NOTIFY_SOCKET from the process environment.
            saved = os.environ.get("NOTIFY_SOCKET")
            os.environ["NOTIFY_SOCKET"] = env["NOTIFY_SOCKET"]
            try:
                self._notifier = sdnotify.SystemdNotifier()
            finally:
                if saved is None:
                    del os.environ["NOTIFY_SOCKET"]
                else:
                    os.environ["NOTIFY_SOCKET"] = saved
            sock = self._notifier.socket
            if sock is None:
                log.warning("NOTIFY_SOCKET is set but cannot be reached; systemd not notified",
                            notify_socket=env["NOTIFY_SOCKET"])
                self._notifier = None
            else:
                sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._notifier is not None

    def _send(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)  # errors are swallowed by sdnotify: best effort

    def ready(self) -> None:
        """Tell systemd start-up is done (the unit becomes 'active')."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """One line for `systemctl status tracker` (e.g. "recording, 12 points waiting")."""
        self._send("STATUS=" + " ".join(text.split()))

    def stopping(self) -> None:
        """Tell systemd a clean stop has begun (no watchdog kill while we flush)."""
        self._send("STOPPING=1")

    def keepalive(self) -> None:
        self._send("WATCHDOG=1")
        self.keepalives_sent += 1

    async def run(self) -> None:
        """Send WATCHDOG=1 every half period until cancelled; returns at once with no watchdog."""
        if self._notifier is None or self.interval_s is None:
            return
        log.info("systemd watchdog keep-alives", every_s=round(self.interval_s, 3))
        while True:
            self.keepalive()
            await asyncio.sleep(self.interval_s)
