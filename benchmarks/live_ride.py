"""Shared parts of the black-box benchmarks of `tracker run` (cpu_budget.py, pi_sized.py).

They measure the real `python -m tracker run` as a subprocess, from outside: what it costs
(/proc/PID/task/*/schedstat), how much memory it holds, how soon it reads the serial port, and
what reaches the API emulator when. Nothing here imports the engine, so these keep working while
the service is rebuilt.

The GPS side is a real recorded log written epoch by epoch into pseudo-terminals by
:class:`EpochWriter`, **re-stamped**: every time and date field of an epoch is replaced with the
wall-clock time the epoch is written (checksums recomputed), so GPS time advances with wall time
at any rate and for any length, as it does on a live receiver. A log shorter than the ride is
played forth and back (…, n-2, n-1, n-2, …, 1, 0, 1, …) so the track never jumps. At 10 epochs/s
a 1 Hz log's positions then move 10x as fast (a 4 kn kayak becomes a 20 m/s bike): well inside
the speed filter. A full pty is treated like a serial port's overrun: the rest of the epoch is
dropped and counted (a UART does not wait for a slow reader; a pty would, and hide it).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tracker.gps.nmea.pacing import epochs  # noqa: E402
from tracker.gps.replay import iter_log_lines  # noqa: E402

SHARED = Path(os.environ.get("TRACKER_SHARED_DATA", REPO.parent / "shared" / "data"))
LOG_1HZ = SHARED / "tracks" / "ROB__tomales_data.shrinked.nmea"  # 1 Hz, GP RMC/GGA/GSA/GSV
LOG_10HZ = SHARED / "gpsd" / "nmea-rtk.log"  # 10 Hz, GN/GP RMC+GGA (Trimble RTK)

# Field index of the time of day in each timed sentence (as tracker.gps.nmea.pacing reads it).
_TIME_FIELD = {b"RMC": 1, b"GGA": 1, b"GNS": 1, b"ZDA": 1, b"GLL": 5, b"GST": 1, b"GBS": 1}


# -- the GPS stream -------------------------------------------------------------------------


def load_epochs(path: Path) -> list[tuple[bytes, ...]]:
    """The timed epochs (receiver bursts) of a recorded log, untimed preamble left out."""
    return [burst.lines for burst in epochs(iter_log_lines(path)) if burst.timed]


def forth_and_back(count: int) -> Iterator[int]:
    """0, 1, …, count-1, count-2, …, 1, 0, 1, …: a loop without a jump back to the start."""
    if count == 1:
        while True:
            yield 0
    while True:
        yield from range(count - 1)
        yield from range(count - 1, 0, -1)


def restamp(line: bytes, when: float) -> bytes:
    """``line`` with its time (and RMC/ZDA date) fields set to ``when`` (UNIX s), checksummed."""
    start = line.find(b"$")
    if start < 0:
        return line
    index = _TIME_FIELD.get(line[start + 3 : start + 6])
    if index is None:
        return line
    stripped = line.rstrip(b"\r\n")
    ending = line[len(stripped) :]
    body = stripped[start + 1 :].split(b"*", 1)[0]
    fields = body.split(b",")
    t = datetime.fromtimestamp(when, UTC)
    hms = f"{t:%H%M%S}.{t.microsecond // 10_000:02d}".encode()
    kind = fields[0][2:]
    if len(fields) > index and fields[index]:
        fields[index] = hms
    if kind == b"RMC" and len(fields) > 9 and fields[9]:
        fields[9] = f"{t:%d%m%y}".encode()
    if kind == b"ZDA" and len(fields) > 4:
        fields[2:5] = [f"{t:%d}".encode(), f"{t:%m}".encode(), f"{t:%Y}".encode()]
    body = b",".join(fields)
    checksum = functools.reduce(lambda a, b: a ^ b, body, 0)
    return stripped[:start] + b"$" + body + b"*%02X" % checksum + ending


@dataclass
class Pty:
    """One pseudo-terminal standing in for a receiver's serial port.

    The benchmark keeps the slave side open too (never reading it) so it can ask the kernel how
    many written bytes the reader has not read yet (FIONREAD): a reader falling behind shows up
    there before anything else.
    """

    link: Path
    name: str  # /dev/pts/N
    master: int
    slave: int
    overrun_bytes: int = 0
    epochs_whole: int = 0

    @classmethod
    def create(cls, link: Path) -> Pty:
        master, slave = os.openpty()
        tty.setraw(slave)  # a serial line: no echo, no CR/LF translation
        os.set_blocking(master, False)
        name = os.ttyname(slave)
        os.symlink(name, link)
        return cls(link, name, master, slave)

    def unread_bytes(self) -> int:
        buf = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", buf)[0])

    def write_epoch(self, data: bytes) -> None:
        """All of ``data`` if the port takes it, else as much as fits (the rest is overrun)."""
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            written = 0
        self.overrun_bytes += len(data) - written
        self.epochs_whole += written == len(data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()


class EpochWriter:
    """Writes the same re-stamped epoch to every pty at ``rate_hz``, in a thread.

    Epoch k goes out at wall time ``t0 + k / rate_hz`` stamped with exactly that time, so a
    point's GPS time is the wall time its fix reached the port (to the writer's lateness, which
    is measured).
    """

    def __init__(self, ptys: Sequence[Pty], log: list[tuple[bytes, ...]], rate_hz: float) -> None:
        self.ptys = list(ptys)
        self.log = log
        self.rate_hz = rate_hz
        self.epochs_written = 0
        self.bytes_per_epoch = 0.0
        self.max_late_s = 0.0
        self.t0 = 0.0
        self.last_stamp = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epoch-writer", daemon=True)

    def start(self) -> None:
        self.t0 = float(int(time.time()) + 1)  # whole seconds, like a receiver's epochs
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        order = forth_and_back(len(self.log))
        written_bytes = 0
        k = 0
        while True:
            due = self.t0 + k / self.rate_hz
            data = b"".join(restamp(line, due) for line in self.log[next(order)])
            if self._stop.wait(max(0.0, due - time.time())):
                return
            self.max_late_s = max(self.max_late_s, time.time() - due)
            for pty in self.ptys:
                pty.write_epoch(data)
            self.last_stamp = due
            k += 1
            self.epochs_written = k
            written_bytes += len(data)
            self.bytes_per_epoch = written_bytes / k


# -- the tracker process, from outside --------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of every live thread of ``pid`` (first field of each schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def has_open(pid: int, target: str) -> bool:
    """True when one of ``pid``'s file descriptors is ``target`` (e.g. /dev/pts/3)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
    return False


def wait_open(proc: subprocess.Popen[bytes], target: str, started: float, limit_s: float) -> float:
    """Seconds from ``started`` (monotonic, just before the process was spawned) until it has
    ``target`` open; polls every 2 ms (the figure is good to ~2 ms)."""
    while time.monotonic() - started < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited ({proc.returncode}) before opening")
        if has_open(proc.pid, target):
            return time.monotonic() - started
        time.sleep(0.002)
    raise RuntimeError(f"process {proc.pid} did not open {target} within {limit_s:.0f} s")


def tracker_command(config: Path) -> list[str]:
    """`tracker run` as the systemd unit starts it (JSON log lines), with this venv's Python."""
    return [sys.executable, "-m", "tracker", "run", "--config", str(config), "--log-json"]


def tracker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1")  # as in hardware/tracker.service
    env.pop("TRACKER_CONFIG", None)
    return env


def spawn_tracker(
    config: Path, log: Path, *, prefix: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], float]:
    """`tracker run` with its log lines going to ``log``: (process, monotonic time just before
    spawning). ``prefix`` runs it through a wrapper that execs it (same PID)."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*prefix, *tracker_command(config)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=tracker_env(),
        )
    return proc, started


def write_config(
    path: Path,
    data_dir: Path,
    emu: Any,
    device: Path,
    *,
    leds: bool,
    uplink: str = "",
    sampler: str = "",
) -> Path:
    """A production-like config (default sampler, uplink and filters unless given) for a
    `tracker run` against the emulator ``emu``, reading ``device`` at 9600 baud, autostart on.
    LEDs on = gpiozero's mock pin factory with the default status/link LEDs and button."""
    gpio = 'pin_factory = "mock"' if leds else 'pin_factory = "none"'
    path.write_text(
        f"""
[gps]
source = "serial"
device = "{device}"
baud = 9600
[storage]
data_dir = "{data_dir}"
[api]
base_url = "{emu.base_url}"
client_id = "{emu.client_id}"
client_secret = "{emu.client_secret}"
[activity]
autostart = true
title_prefix = "Benchmark ride"
[gpio]
{gpio}
[uplink]
{uplink}
[sampler]
{sampler}
""",
        encoding="utf-8",
    )
    return path


def stop_process(proc: subprocess.Popen[bytes], limit_s: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit within ``limit_s``; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# -- gpsd, the baseline -----------------------------------------------------------------------


def gpsd_path() -> str | None:
    for candidate in ("/usr/sbin/gpsd", "/usr/local/sbin/gpsd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def gpsd_version(gpsd: str) -> str:
    return subprocess.run([gpsd, "-V"], capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GpsdWatcher:
    """One client of gpsd with ``?WATCH={"enable":true,"json":true}``, counting TPV reports
    with a fix (mode 2 or 3): what a map or logger attached to gpsd would do."""

    port: int
    tpv_fixes: int = 0
    lines: int = 0
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, limit_s: float = 10.0) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._sock.sendall(b'?WATCH={"enable":true,"json":true}\n')
        self._thread = threading.Thread(target=self._run, name="gpsd-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(None)
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.5)
            if not ready:
                continue
            chunk = self._sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            *whole, buf = buf.split(b"\n")
            for line in whole:
                self.lines += 1
                if b'"class":"TPV"' in line and (b'"mode":2' in line or b'"mode":3' in line):
                    self.tpv_fixes += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()


def start_gpsd(gpsd: str, device: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """gpsd in the foreground on loopback, read-only (-b), polling the device without waiting
    for a client (-n): (process, its port, monotonic time just before spawning)."""
    port = free_port()
    cmd = [gpsd, "-N", "-n", "-b", "-F", str(workdir / "gpsd.sock"), "-S", str(port), device]
    started = time.monotonic()
    with (workdir / "gpsd.log").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    return proc, port, started


def temp_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)


def machine() -> str:
    """`nproc`, `lscpu` model name, load and date, for the figures' heading."""
    model = "unknown CPU"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    load = os.getloadavg()
    return (
        f"{model}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
