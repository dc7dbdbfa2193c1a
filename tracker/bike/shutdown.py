"""Long press → safe shutdown of the Pi: flush first, then power off.

A Pi on a USB battery dies whenever the battery does; a rider who holds the button for a few
seconds at the end of a ride should instead get a clean stop: the engine's flush hook runs first
(stop the activity, commit the sampler's last point and the outbox to disk), then the configured
command (``[button] shutdown_command``, default ``systemctl poweroff``, allowed for the service
user by ``hardware/50-tracker-poweroff.rules``) powers the Pi off.

The command only runs when the tracker is *our* systemd service: ``hardware/tracker.service``
sets ``TRACKER_SERVICE=1`` and systemd sets ``INVOCATION_ID``. Both are needed, so holding a
simulated button in a demo or a test never powers the machine off, not even on a CI runner that
is itself a systemd service (its children inherit ``INVOCATION_ID``). Tests pass
``require_service=False`` and a harmless command.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence

from tracker.config import ButtonSettings
from tracker.logs import get_logger

log = get_logger("shutdown")

FlushHook = Callable[[], Awaitable[object]]


class SafeShutdown:
    """Run the engine's flush hook, then the power-off command (once)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        flush: FlushHook | None = None,
        flush_timeout_s: float = 20.0,
        require_service: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = tuple(command)
        self._flush = flush
        self.flush_timeout_s = flush_timeout_s
        self.require_service = require_service
        self._env = os.environ if env is None else env
        self._started = False
        self.returncode: int | None = None

    @classmethod
    def from_settings(cls, button: ButtonSettings, **kwargs: object) -> SafeShutdown:
        return cls(button.shutdown_command, **kwargs)  # type: ignore[arg-type]

    def set_flush(self, hook: FlushHook) -> None:
        """The engine registers what must reach the disk before power goes."""
        self._flush = hook

    @staticmethod
    def is_tracker_service(env: Mapping[str, str]) -> bool:
        """True inside hardware/tracker.service (see the module docstring)."""
        return env.get("TRACKER_SERVICE") == "1" and bool(env.get("INVOCATION_ID"))

    @property
    def started(self) -> bool:
        return self._started

    async def __call__(self) -> bool:
        """Flush, then power off. True if the command ran and succeeded. A second call is a no-op.

        The command runs even when the flush failed or timed out: the rider asked for power-off,
        and whatever reached the outbox is already durable.
        """
        if self._started:
            return False
        self._started = True
        if self._flush is not None:
            try:
                await asyncio.wait_for(self._flush(), self.flush_timeout_s)
                log.info("flushed before shutdown")
            except TimeoutError:
                log.error("flush before shutdown timed out; powering off anyway",
                          timeout_s=self.flush_timeout_s)
            except Exception as exc:
                log.error("flush before shutdown failed; powering off anyway",
                          error=f"{type(exc).__name__}: {exc}")
        shown = shlex.join(self.command)
        if not self.command:
            log.warning("no shutdown command configured; nothing to run")
            return False
        if self.require_service and not self.is_tracker_service(self._env):
            log.warning("not running as the systemd service: shutdown command skipped",
                        command=shown)
            return False
        log.warning("long press: powering off", command=shown)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            log.error("shutdown command could not start", command=shown, error=str(exc))
            return False
        output, _ = await proc.communicate()
        self.returncode = proc.returncode
        if proc.returncode != 0:
            log.error("shutdown command failed", command=shown, returncode=proc.returncode,
                      output=output.decode("utf-8", "replace").strip()[-500:])
            return False
        return True
