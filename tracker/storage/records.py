"""What the outbox tells the engine about an activity: its state and its persisted counters.

The queues of points behind an activity stay inside the outbox (``Outbox.pending``,
``Outbox.pending_count`` ... read them): a record is a summary the engine may read freely, never
a handle on the outbox's staging.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tracker.ride.activity import Activity


@dataclass
class ActivityRecord:
    """An activity with the counters stored beside it (one row of ``activities``)."""

    activity: Activity
    created_at: float
    finished_at: float | None = None
    sent_upto: int = -1  # newest point timestamp the server confirmed (the watermark)
    hr_sent_upto: int = -1  # same for heart-rate samples
    points_recorded: int = 0
    requests: int = 0
    bytes_sent: int = 0
    last_upload_at: float | None = None

    @property
    def local_id(self) -> int:
        return self.activity.local_id


@dataclass(frozen=True)
class SamplerState:
    """The sampler's snapshot, committed with the points it produced (exact resume)."""

    snapshot: dict[str, Any]
    last_fix_unix: float | None


def activity_with(rec: ActivityRecord, **changes: Any) -> Activity:
    """A changed copy of a record's activity (for ``Outbox.update_activity``)."""
    return replace(rec.activity, **changes)
