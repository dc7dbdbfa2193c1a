"""A gpsfake-like GPS receiver on a real pseudo-terminal, for tests and the demo.

It creates a pty pair, puts a stable symlink (``<dir>/gps0``) to the slave side where a device
node would be, and writes a recorded NMEA log into the master side from a thread:

* ``speed > 0``: at the log's own pace (its NMEA times) × ``speed``;
* ``rate_hz``: a fixed number of epochs per second, whatever the log says;
* ``speed = 0``: as fast as the reader takes them (pty back-pressure paces the writer);
  :attr:`FakeReceiver.gps_ratio` tells how many GPS seconds went by per wall second.

``unplug()`` closes the pty and removes the link (the reader sees end-of-file, like a USB
receiver pulled out); ``replug()`` makes a new pty behind the same link. ``device_group``:
give every new pty to this group, mode 0660, as a udev rule does for a USB receiver
(``GROUP="dialout"``), so a daemon that dropped root after starting (gpsd) can open it again
after a replug (needs root; a pty is otherwise its creator's alone). Like a receiver that
buffers until someone listens, it writes only while a reader has the device open
(``wait_for_reader``, default True), so tests can count every epoch from the reader's side.
Lines starting with ``#`` are not sent. Counters: ``sentences_written``, ``epochs_written``;
``epoch_times`` has, for each epoch written, the monotonic time just before the writes of its
first and of its last byte (what a latency benchmark measures a reader against).
"""

from __future__ import annotations

import contextlib
import os
import select
import tempfile
import threading
import time
import tty
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from tracker.gps.nmea.pacing import Burst, epochs
from tracker.gps.replay import iter_log_lines

_POLL_S = 0.02
# After a reader opens the device, pyserial flushes the input queue; give it that moment.
_SETTLE_S = 0.25
# A burst written this late (the writer waited for a reader) restarts the pacing clock.
_BEHIND_S = 0.05


class FakeReceiver:
    """See the module docstring. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        log: str | Path | Iterable[bytes],
        *,
        link: str | Path | None = None,
        speed: float = 1.0,
        rate_hz: float | None = None,
        max_gap_s: float | None = None,
        loop: bool = False,
        wait_for_reader: bool = True,
        device_group: int | None = None,
    ) -> None:
        if isinstance(log, str | Path):
            lines = list(iter_log_lines(log))
        else:
            lines = [line for line in log if not line.startswith(b"#")]
        self._bursts: list[Burst] = list(epochs(lines))
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if link is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fakegps-")
            link = Path(self._tmp.name) / "gps0"
        self.path = Path(link)
        self.speed = speed
        self.rate_hz = rate_hz
        self.max_gap_s = max_gap_s
        self.loop = loop
        self.wait_for_reader = wait_for_reader
        self.device_group = device_group
        self.sentences_written = 0
        self.epochs_written = 0
        self.gps_seconds_written = 0.0
        self.bytes_written = 0
        self.plugs = 0
        self.epochs_at_plug: list[int] = []
        # (plug number, index of the epoch in the log) for every epoch written whole
        self.written: list[tuple[int, int]] = []
        # (index of the epoch in the log, time.monotonic() at its first byte, at its last byte)
        # for every epoch written whole, in the order written
        self.epoch_times: list[tuple[int, float, float]] = []
        self._first_byte_at = 0.0
        self._last_byte_at = 0.0
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._plugged = threading.Event()
        self._progress = threading.Condition()
        self._master: int | None = None
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._settled_plug: int | None = None
        self._bytes_at_plug = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeReceiver:
        self.replug()
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fake-gps", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._plugged.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.unplug()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- hot-plug ----------------------------------------------------------------------------

    def unplug(self) -> None:
        """Close the pty (the reader sees end-of-file) and remove the device link."""
        with self._lock:
            self._plugged.clear()
            if self._master is not None:
                os.close(self._master)
                self._master = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def replug(self) -> None:
        """A new pty behind the same link path."""
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no CR/LF translation: a serial line, not a terminal
            name = os.ttyname(slave)
            if self.device_group is not None:
                os.fchown(slave, -1, self.device_group)
                os.fchmod(slave, 0o660)
            os.close(slave)  # the reader opens it by path; POLLHUP tells us when it has
            os.set_blocking(master, False)
            tmp = self.path.with_name(self.path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(name, tmp)
            os.replace(tmp, self.path)
            self._master = master
            self.plugs += 1
            self.epochs_at_plug.append(self.epochs_written)
            self._bytes_at_plug = self.bytes_written
            self._plugged.set()

    @property
    def plugged(self) -> bool:
        return self._plugged.is_set()

    # -- progress ----------------------------------------------------------------------------

    @property
    def gps_ratio(self) -> float:
        """GPS seconds written per wall-clock second so far."""
        elapsed = time.monotonic() - self._started_at
        return self.gps_seconds_written / elapsed if elapsed > 0 else 0.0

    @property
    def bytes_since_plug(self) -> int:
        """Bytes written into the current pty: a reader that has read this many has it all."""
        return self.bytes_written - self._bytes_at_plug

    @property
    def total_epochs(self) -> int:
        return sum(1 for burst in self._bursts if burst.timed)

    def wait_epochs(self, count: int, timeout: float = 30.0) -> bool:
        """Block until ``count`` epochs were written (or the log ended); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.epochs_written < count and not self.done.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return self.epochs_written >= count

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._play_once()
                if not self.loop:
                    break
        finally:
            self.done.set()
            with self._progress:
                self._progress.notify_all()

    def _play_once(self) -> None:
        due = time.monotonic()
        index = -1
        for burst in self._bursts:
            index += burst.timed
            if self._stop.is_set():
                return
            gap = burst.gap_s if self.max_gap_s is None else min(burst.gap_s, self.max_gap_s)
            if self.rate_hz:
                due += 1.0 / self.rate_hz if burst.timed else 0.0
            elif self.speed > 0:
                due += gap / self.speed
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            written_under = self._write_burst(b"".join(burst.lines))
            if time.monotonic() - due > _BEHIND_S:
                # The write waited (for a reader, a replug): pace the rest from now, rather
                # than rush out every burst that fell due meanwhile.
                due = time.monotonic()
            if written_under is None:
                # Unplugged mid-burst: the rest of it is lost, as on a real cable.
                due = time.monotonic()
                continue
            self.gps_seconds_written += gap
            self.sentences_written += sum(1 for line in burst.lines if line[:1] in (b"$", b"!"))
            if burst.timed:
                with self._progress:
                    self.epochs_written += 1
                    self.written.append((written_under, index))
                    self.epoch_times.append((index, self._first_byte_at, self._last_byte_at))
                    self._progress.notify_all()

    def _write_burst(self, data: bytes) -> int | None:
        """Write all of ``data``; the plug number it went out under, or None if the device
        went away before it was all out."""
        view = memoryview(data)
        plug_id: int | None = None
        settled_for: int | None = None
        while view:
            if self._stop.is_set():
                return None
            if not self._plugged.is_set():
                if view.nbytes < len(data):
                    return None  # unplugged mid-burst
                self._plugged.wait()
                continue
            with self._lock:
                master = self._master
                if master is None:
                    continue
                if plug_id is None:
                    plug_id = self.plugs
                elif plug_id != self.plugs:
                    return None  # unplugged and replugged mid-burst
                attached = not self.wait_for_reader or self._reader_attached(master)
                if attached and settled_for == self.plugs:
                    _, writable, _ = select.select([], [master], [], _POLL_S)
                    if writable:
                        # Stamped before the write: a reader may run before this thread
                        # does again, so a stamp after it could postdate the reader's fix.
                        now = time.monotonic()
                        try:
                            count = os.write(master, view)
                        except BlockingIOError:
                            count = 0
                        except OSError:
                            return None
                        if count:
                            if view.nbytes == len(data):
                                self._first_byte_at = now
                            self._last_byte_at = now
                        view = view[count:]
                        self.bytes_written += count
                    continue
            if attached:
                if self._settled_plug != plug_id:
                    # A reader just opened the device: let its open (and input flush) finish.
                    self._stop.wait(_SETTLE_S)
                    self._settled_plug = plug_id
                settled_for = plug_id
            else:
                self._settled_plug = None
                self._stop.wait(_POLL_S)
        return plug_id if plug_id is not None else self.plugs

    @staticmethod
    def _reader_attached(master: int) -> bool:
        """True while some process has the slave side open (the master sees no hang-up)."""
        poller = select.poll()
        poller.register(master, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in poller.poll(0))
