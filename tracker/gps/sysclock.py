"""The kernel's word on the system clock (adjtimex via ctypes): the one I/O edge of
:mod:`tracker.gps.clock`.

``adjtimex`` with ``modes = 0`` only reads the kernel's NTP state; it needs no privilege. Through
ctypes one call still cost ~40 µs of a live fix's ~1 ms at 1 Hz (issue 17), so the answer is kept
for ``ASK_EVERY_S`` of the monotonic clock, in one reused buffer. That is far below how fast the
state can change: chrony polls the source every 64 s or more, and the kernel only drops
"synchronised" once its estimated error passes 16 s, hours after the last update. Off Linux, or if
the call fails, the answer is None ("cannot tell"), which :func:`tracker.gps.clock.trusted_time`
treats as not synchronised.
"""

from __future__ import annotations

import ctypes
import math
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


ASK_EVERY_S = 10.0


class _KernelAnswer:
    """The latest answer and when it was asked (monotonic), with the buffer it reuses."""

    def __init__(self) -> None:
        self.at = -math.inf
        self.value: bool | None = None
        self.buf = _Timex()
        self.ptr = ctypes.pointer(self.buf)


_answer = _KernelAnswer()


def kernel_clock_synchronised() -> bool | None:
    """True when NTP/chrony has synchronised the system clock, False when the kernel says it
    has not, None when the kernel cannot be asked (not Linux, no adjtimex). At most
    ``ASK_EVERY_S`` old."""
    now = time.monotonic()
    if now - _answer.at < ASK_EVERY_S:
        return _answer.value
    _answer.at = now
    _answer.value = _ask_kernel()
    return _answer.value


def _ask_kernel() -> bool | None:
    fn = _adjtimex()
    if fn is None:
        return None
    buf = _answer.buf
    buf.modes = 0  # read only
    state = fn(_answer.ptr)
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
