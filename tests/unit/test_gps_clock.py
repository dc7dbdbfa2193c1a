"""Which "now" to believe: the synchronised system clock, else GPS time, else a plausible clock."""

from __future__ import annotations

import sys
import time

import pytest

from tracker.gps import sysclock
from tracker.gps.clock import (
    PLAUSIBLE_AFTER,
    STA_UNSYNC,
    TIME_ERROR,
    gps_now,
    kernel_says_synchronised,
    trusted_time,
)
from tracker.gps.sysclock import kernel_clock_synchronised, synchronised_system_time, trusted_now

NOW = 1_773_568_800.0  # 2026-03-15T10:00:00Z


def test_kernel_state_and_status_bits() -> None:
    assert kernel_says_synchronised(0, 0x2001)  # TIME_OK, STA_PLL | STA_NANO
    assert not kernel_says_synchronised(0, STA_UNSYNC)
    assert not kernel_says_synchronised(TIME_ERROR, 0)
    assert not kernel_says_synchronised(TIME_ERROR, STA_UNSYNC | 0x2000)


def test_synchronised_system_clock_wins_over_gps() -> None:
    assert trusted_time(system_now=NOW, system_synchronised=True, gps_now=NOW + 3600) == NOW


@pytest.mark.parametrize("synchronised", [False, None])
def test_gps_time_when_the_kernel_does_not_vouch(synchronised: bool | None) -> None:
    # A Pi without RTC after a restore from fake-hwclock: plausible, yet hours off.
    got = trusted_time(system_now=NOW - 7200, system_synchronised=synchronised, gps_now=NOW)
    assert got == NOW


def test_a_plausible_clock_then_nothing() -> None:
    assert trusted_time(system_now=NOW, system_synchronised=False, gps_now=None) == NOW
    assert trusted_time(system_now=86_400.0, system_synchronised=False, gps_now=None) is None
    assert trusted_time(system_now=PLAUSIBLE_AFTER, system_synchronised=None, gps_now=None) == (
        PLAUSIBLE_AFTER
    )


def test_gps_now_runs_on_the_monotonic_clock() -> None:
    assert gps_now(NOW, 100.0, 112.5) == NOW + 12.5
    assert gps_now(None, 100.0, 112.5) is None
    assert gps_now(NOW, None, 112.5) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_the_real_kernel_answers() -> None:
    # Whatever this machine's state, the kernel is asked and answers a bool, and the helpers
    # follow it: the system clock only when synchronised.
    synced = kernel_clock_synchronised()
    assert isinstance(synced, bool)
    with open("/proc/self/status"):  # the call is a plain read: no privilege was needed
        pass
    ref = synchronised_system_time()
    if synced:
        assert ref is not None
        assert abs(ref - time.time()) < 5
        assert trusted_now(NOW + 1e6) == pytest.approx(time.time(), abs=5)
    else:
        assert ref is None
        assert trusted_now(NOW) == NOW


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_the_kernel_is_asked_at_most_every_ask_every_s() -> None:
    # One answer serves every fix for ASK_EVERY_S (a ctypes call per fix cost ~40 µs of ~1 ms).
    first = kernel_clock_synchronised()
    asked_at = sysclock._answer.at
    assert kernel_clock_synchronised() == first
    assert sysclock._answer.at == asked_at  # not asked again
    sysclock._answer.at -= sysclock.ASK_EVERY_S  # as if that long had passed
    assert kernel_clock_synchronised() == first
    assert sysclock._answer.at > asked_at - sysclock.ASK_EVERY_S  # asked afresh
