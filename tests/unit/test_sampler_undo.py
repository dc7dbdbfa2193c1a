"""Undoing a fix: the checkpoint-and-replay undo leaves exactly what a copy taken before it would.

The sampler skips a fix whose processing fails (``skipped_unreachable``) and goes back to the
state before it. It does that by replaying the fixes since its last checkpoint rather than by
copying every leaf before every fix; a sampler made to copy before every fix (the way a replay
runs) is the reference here, on noisy sub-second rides where many fixes must be undone.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime

import pytest

from tracker.model import Fix, Point
from tracker.ride.sampler import CHECKPOINT_EVERY, Sampler

KY = math.radians(1.0) * 6_371_008.8


def noisy_ride(seed: int, n: int = 600) -> list[Fix]:
    """5 Hz, a quarter second off the whole seconds, GPS noise as large as a 2 m bound."""
    rnd = random.Random(seed)
    lat0, lon0 = 47.0, 8.0
    kx = KY * math.cos(math.radians(lat0))
    x = y = 0.0
    heading = 0.0
    out = []
    for i in range(n):
        heading += rnd.gauss(0.0, 0.3)
        x += 1.2 * math.cos(heading)
        y += 1.2 * math.sin(heading)
        t = 1_700_000_000.25 + i * 0.2
        ox = x + rnd.gauss(0.0, 2.0)
        oy = y + rnd.gauss(0.0, 2.0)
        out.append(
            Fix(
                time=datetime.fromtimestamp(t, tz=UTC),
                unix=t,
                lat=lat0 + oy / KY,
                lon=lon0 + ox / kx,
                alt_msl=None,
            )
        )
    return out


def outputs(s: Sampler, fixes: list[Fix]) -> list[list[Point]]:
    got = [s.feed(f) for f in fixes]
    return [*got, s.flush()]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_undo_by_replay_equals_a_copy_before_every_fix(seed: int) -> None:
    fixes = noisy_ride(seed)
    plain = Sampler(2.0, 10)
    copying = Sampler(2.0, 10)
    copying._replaying = True  # (what a replay does: copy the leaves before every fix)
    assert outputs(plain, fixes) == outputs(copying, fixes)
    assert plain.skipped_unreachable == copying.skipped_unreachable > 3
    assert len(fixes) > 3 * CHECKPOINT_EVERY
    for name in ("fixes_accepted", "points_out", "knots_agreed", "knots_due", "knots_forced"):
        assert getattr(plain, name) == getattr(copying, name)


def test_undo_after_a_restore_continues_like_the_uninterrupted_sampler() -> None:
    fixes = noisy_ride(4)
    whole = outputs(Sampler(2.0, 10), fixes)
    s = Sampler(2.0, 10)
    got = [s.feed(f) for f in fixes[:250]]
    s = Sampler.restore(json.loads(json.dumps(s.snapshot())))
    got += [s.feed(f) for f in fixes[250:]]
    assert [*got, s.flush()] == whole
    assert s.skipped_unreachable > 0
