"""The kernel's word on the system clock (adjtimex via ctypes): the one I/O edge of
:mod:`tracker.gps.clock`.

``adjtimex`` with ``modes = 0`` only reads the kernel's NTP state; it needs no privilege and costs
a system call (microseconds), so it is asked afresh every time: NTP may synchronise, or lose
synchronisation, at any moment of a ride. Off Linux, or if the call fails, the answer is None
("cannot tell"), which :func:`tracker.gps.clock.trusted_time` treats as not synchronised.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable
from functools import cache

from tracker.gps.clock import kernel_says_synchronised, trusted_time


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` from <sys/timex.h> (the native ABI of the ``adjtimex`` symbol)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]  # fmt: skip


@cache
def _adjtimex() -> Callable[[ctypes._Pointer[_Timex]], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn


def kernel_clock_synchronised() -> bool | None:
    """True when NTP/chrony has synchronised the system clock, False when the kernel says it
    has not, None when the kernel cannot be asked (not Linux, no adjtimex)."""
    fn = _adjtimex()
    if fn is None:
        return None
    buf = _Timex()  # modes = 0: read only
    state = fn(ctypes.pointer(buf))
    if state < 0:
        return None
    return kernel_says_synchronised(state, buf.status)


def synchronised_system_time() -> float | None:
    """The system clock if the kernel says it is synchronised, else None: the reference a live
    FixFilter checks fix times against (``open_fix_stream(..., clock=synchronised_system_time)``).
    """
    return time.time() if kernel_clock_synchronised() else None


def trusted_now(gps_unix_now: float | None) -> float | None:
    """"Now" for deadlines (token expiry): the synchronised system clock, else GPS time (the
    caller's last fix time carried forward on the monotonic clock, see
    :func:`tracker.gps.clock.gps_now`), else a plausible system clock, else None."""
    return trusted_time(
        system_now=time.time(),
        system_synchronised=kernel_clock_synchronised(),
        gps_now=gps_unix_now,
    )
