"""One activity's points and heart-rate samples on their way out: staged (not yet committed)
and pending (committed, after the server's watermark: what the uplink may send).

Private to the outbox: the engine asks the outbox (``pending``, ``pending_count``,
``settled`` ...), it never holds these lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from tracker.model import HeartRateSample, Point
from tracker.storage.rows import Loaded


class _Timed(Protocol):
    @property
    def timestamp(self) -> int: ...


T = TypeVar("T", bound=_Timed)


@dataclass
class ActivityQueue:
    # Durable points/samples after the watermarks, oldest first (what the uplink may send).
    pending: list[Point] = field(default_factory=list)
    pending_hr: list[HeartRateSample] = field(default_factory=list)
    # Staged since the last commit (not yet on disk).
    staged: list[Point] = field(default_factory=list)
    staged_hr: list[HeartRateSample] = field(default_factory=list)
    dirty: bool = True  # the activities row needs writing

    @classmethod
    def from_disk(cls, loaded: Loaded) -> dict[int, ActivityQueue]:
        """The queues as the database holds them: what waits after the watermarks, nothing
        staged, every row as stored."""
        return {
            r.local_id: cls(
                pending=loaded.pending[r.local_id],
                pending_hr=loaded.pending_hr[r.local_id],
                dirty=False,
            )
            for r in loaded.records
        }

    def oldest(self, limit: int) -> tuple[list[Point], list[HeartRateSample]]:
        """The oldest ``limit`` pending points, and the pending HR samples up to the last of
        them (all of them when no point is held back)."""
        points = self.pending[:limit]
        if points and len(self.pending) > limit:
            last = points[-1].timestamp
            hr = [s for s in self.pending_hr if s.timestamp <= last]
        else:
            hr = list(self.pending_hr)
        return points, hr

    def drop_sent(self, sent_upto: int, hr_sent_upto: int) -> None:
        """Forget what the watermarks now cover."""
        self.pending = [p for p in self.pending if p.timestamp > sent_upto]
        self.pending_hr = [s for s in self.pending_hr if s.timestamp > hr_sent_upto]

    def settled(self, sent_upto: int, hr_sent_upto: int) -> bool:
        """Every staged point and sample is already sendable (committed or held in memory)."""
        known = max(sent_upto, self.pending[-1].timestamp if self.pending else -1)
        known_hr = max(hr_sent_upto, self.pending_hr[-1].timestamp if self.pending_hr else -1)
        return all(p.timestamp <= known for p in self.staged) and all(
            s.timestamp <= known_hr for s in self.staged_hr
        )

    def keep(
        self,
        points: list[Point],
        hr: list[HeartRateSample],
        floors: tuple[int, int],
        *,
        durable: bool,
    ) -> None:
        """After a commit of these: they become sendable. After a failed one, they stay queued
        for the next disk attempt *and* become sendable (memory mode: nothing is durable)."""
        append_newer(self.pending, points, floors[0])
        append_newer(self.pending_hr, hr, floors[1])
        if not durable:
            # Kept for the next disk attempt as well (they are not on disk yet).
            self.staged[:0] = points
            self.staged_hr[:0] = hr
            self.dirty = True


def append_newer(queue: list[T], items: list[T], floor: int) -> None:
    """Append items newer than both the watermark and the queue's last one (a failed commit
    re-stages rows that are already pending: they must not be queued twice)."""
    last = queue[-1].timestamp if queue else floor
    last = max(last, floor)
    for item in items:
        if item.timestamp > last:
            queue.append(item)
            last = item.timestamp
