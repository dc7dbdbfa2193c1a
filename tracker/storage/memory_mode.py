"""Whether the outbox writes to the disk or runs from memory, and when it tries the disk again.

A full disk or a read-only data dir can heal (the rider frees space, fixes the mount): the
outbox tries again every ``retry_s``. A corrupt file never heals by itself and moving it aside
is the rider's decision: it is never written again by this process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tracker.logs import get_logger
from tracker.storage.failures import describe, is_corrupt

log = get_logger("outbox")


class MemoryMode:
    def __init__(self, path: Path, retry_s: float, monotonic: Callable[[], float]) -> None:
        self.path = path
        self.retry_s = retry_s
        self._mono = monotonic
        self.error: str | None = None  # why the outbox runs from memory (None: on disk)
        self.corrupt = False
        self._next_retry = 0.0

    def enter(self, exc: BaseException, *, during: str) -> None:
        reason = describe(exc, self.path)
        self.corrupt = self.corrupt or is_corrupt(exc)
        self.error = reason
        log.error(
            "outbox storage failed; running from memory, nothing already stored is lost",
            reason=reason,
            during=during,
            path=str(self.path),
        )

    def write_failed(self, exc: BaseException) -> None:
        """A commit failed: enter memory mode (said once) and wait ``retry_s`` before the next
        attempt."""
        if self.error is None:
            self.enter(exc, during="commit")
        self._next_retry = self._mono() + self.retry_s

    def may_retry_disk(self) -> bool:
        return not self.corrupt and self._mono() >= self._next_retry

    def write_succeeded(self) -> None:
        if self.error is not None:
            log.warning(
                "storage is writable again; memory-held points are on disk now",
                path=str(self.path),
            )
            self.error = None
