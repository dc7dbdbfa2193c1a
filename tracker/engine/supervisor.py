"""Task supervision: each part of the service runs as a named task that is restarted when it fails.

One broken part (a flaky receiver, a bug in the LED code) must never stop the recording: a task
that raises is logged with its traceback and started again after a pause that grows by the
declared :data:`tracker.retry.SUPERVISOR` policy. `tracker status` shows restarts per task, and
a task that failed and is not running turns the LED to "error": ``changed`` is called whenever a
task fails or runs again, so the LEDs look at it then (nothing polls the tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tracker.logs import get_logger
from tracker.retry import SUPERVISOR, Backoff, RetryPolicy, Sleep

log = get_logger("engine")


@dataclass
class TaskHealth:
    restarts: int = 0
    last_error: str | None = None
    running: bool = False


class Supervisor:
    """Runs named tasks; ``stop()`` cancels them all and waits for them."""

    def __init__(
        self,
        *,
        policy: RetryPolicy = SUPERVISOR,
        sleep: Sleep = asyncio.sleep,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._policy = policy
        self._sleep = sleep
        self.changed = changed  # a task failed or runs again (the LED's "error" input)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.health: dict[str, TaskHealth] = {}

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]], *, restart: bool) -> None:
        """Run ``fn`` as task ``name``; when it raises, run it again after a pause if
        ``restart``, else leave it failed. A task that returns is done, not restarted."""
        health = self.health.setdefault(name, TaskHealth())

        async def supervised() -> None:
            backoff = Backoff(self._policy, self._sleep)
            while True:
                back = health.restarts > 0
                health.running = True
                if back:
                    self.changed()  # running again after a failure
                try:
                    await fn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    health.restarts += 1
                    health.last_error = f"{type(exc).__name__}: {exc}"
                    health.running = False
                    self.changed()
                    if not restart:
                        log.exception("task failed", task=name)
                        return
                    pause = backoff.failure()
                    log.exception("task failed; restarting it", task=name, pause_s=pause)
                    await self._sleep(pause)
                    continue
                health.running = False
                if health.restarts:
                    self.changed()  # done after a failure: still counts as failed
                return

        self._tasks[name] = asyncio.create_task(supervised(), name=f"tracker-{name}")

    def note_error(self, name: str, error: str) -> None:
        """A task that gave up by itself with a reason worth showing (not a crash: no restart)."""
        self.health.setdefault(name, TaskHealth()).last_error = error

    def failed(self) -> bool:
        """Some task failed and is not running (what the LED shows as "error")."""
        return any(h.restarts and not h.running for h in self.health.values())

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
