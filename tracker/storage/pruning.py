"""Which stored activities go when: finished ones past ``keep_days``, and oldest finished ones
first while the file is near its bound (``max_mb``). Points still waiting to be sent are never
pruned: the outbox only offers finished activities with nothing pending.

Runs in the outbox's worker thread, on its connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from tracker.ride.activity import PRUNABLE
from tracker.storage.rows import delete_activities
from tracker.storage.schema import used_bytes

HIGH_WATER = 0.8  # prune down to this share of max_mb


def finished_ids(db: sqlite3.Connection) -> list[int]:
    """Every prunable activity, oldest first: what may go when a write hits the bound."""
    return [
        int(r[0])
        for r in db.execute(
            "SELECT id FROM activities WHERE state IN "  # noqa: S608 - our own constants
            f"({','.join(repr(s.value) for s in sorted(PRUNABLE, key=str))}) ORDER BY id"
        )
    ]


def prune(
    db: sqlite3.Connection,
    old: Iterable[int],
    finished: Sequence[int],
    max_bytes: int,
    *,
    force: bool = False,
) -> list[int]:
    """Delete ``old``, then oldest ``finished`` ones while the file is over the high-water mark
    (``force``: at least one round, the file is full already). Returns the deleted ids."""
    removed = list(old)
    if force or used_bytes(db) > HIGH_WATER * max_bytes:
        # Oldest finished first, half of them at a time, until under 80 % of the bound.
        candidates = [i for i in finished if i not in removed]
        while candidates and (force or used_bytes(db) > HIGH_WATER * max_bytes):
            take = candidates[: max(1, len(candidates) // 2)]
            candidates = candidates[len(take) :]
            delete_activities(db, take)
            removed.extend(take)
            force = False
    delete_activities(db, removed)
    return removed
