"""Fix equality: the same fields are equal, an epoch without a position included (NaN)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tracker.model import Fix, FixMode

T = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _no_position(nan: float) -> Fix:
    return Fix(T, T.timestamp(), nan, nan, FixMode.NO_FIX)


def test_two_epochs_without_a_position_are_equal_whatever_nan_object_they_hold() -> None:
    # Two distinct NaN objects (a compiled decoder makes a new float per fix); with the
    # dataclass's generated __eq__ these compared unequal, and equal only for one shared NaN.
    a, b = _no_position(float("nan")), _no_position(-math.nan * 1.0)
    assert a.lat is not b.lat
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_any_other_difference_still_counts() -> None:
    base = Fix(T, T.timestamp(), 48.1, 11.5, FixMode.FIX_3D, 500.0, 3.2, 90.0, 9, 0.9)
    assert base == Fix(T, T.timestamp(), 48.1, 11.5, FixMode.FIX_3D, 500.0, 3.2, 90.0, 9, 0.9)
    assert base != Fix(T, T.timestamp(), 48.1, 11.6, FixMode.FIX_3D, 500.0, 3.2, 90.0, 9, 0.9)
    assert base != Fix(T, T.timestamp(), 48.1, 11.5, FixMode.FIX_3D, 500.0, 3.2, 90.0, 9, 1.0)
    assert base != _no_position(math.nan)
    assert base != "not a fix"
