"""The gpsd source against a real gpsd: Debian's ``gpsd -N`` on a FakeReceiver's pseudo-terminal.

Each test starts its own gpsd in the foreground on a loopback port and a control socket in a
temporary directory (never the system service), fed from a shared gpsd log and a real track.
What is checked:

* its fixes agree with ``tracker fixes`` on the same log for at least 99 % of the epochs;
* a gpsd not running at start, gpsd restarted mid-ride, and the receiver unplugged and
  replugged under gpsd (udev's ``-path``/``+path`` on gpsd's control socket) are each survived
  with one log line, and after each recovery no epoch is lost.

The replug needs what udev gives a real receiver. gpsd opens the devices on its command line as
root, then runs as an unprivileged user (Debian: gpsd, group dialout); a device that comes back
later is opened as that user. So the new pty must be open to gpsd's group
(``FakeReceiver(device_group=...)``, mode 0660, as a udev rule's ``GROUP="dialout"``), and gpsd
is told its kernel path (udev's hook sends ``+$DEVNAME``, e.g. ``+/dev/ttyACM0``): the test's
link sits in a private temporary directory gpsd's user cannot enter. Without either, gpsd's
reopen fails with "Permission denied": it reports the device activated, then no fix again.

Times are compared modulo 1024 GPS weeks: Debian's gpsd 3.22 moves these old recordings'
dates one week-number rollover forward, as the tracker does for a live receiver.
Without gpsd installed these tests skip (``scripts/setup`` installs it as root with apt).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path

import pytest
import structlog

from tests.conftest import shared_file
from tracker.config import FilterSettings
from tracker.gps.fake import FakeReceiver
from tracker.gps.filters import FixFilter
from tracker.gps.gpsd import GpsdSource
from tracker.gps.nmea import FixDecoder
from tracker.gps.replay import iter_log_lines
from tracker.gps.stream import FixStream
from tracker.model import Fix, FixMode
from tracker.retry import RetryPolicy

GPSD = shutil.which("gpsd")
pytestmark = pytest.mark.skipif(
    GPSD is None,
    reason="gpsd is not installed (scripts/setup installs Debian's gpsd when run as root)",
)
FAST_RECONNECT = RetryPolicy(initial_s=0.05, max_s=0.2, jitter=0)
ROLLOVER_MS = 1024 * 7 * 86_400_000
SAFETY_TIMEOUT_S = 40  # a safety net only: the tests end on events
SETTLE_S = 1.5  # after the receiver wrote its last epoch, for gpsd's last reports


def key(fix: Fix) -> int:
    return round(fix.unix * 1000) % ROLLOVER_MS


async def epoch_keys(source: GpsdSource, received: list[int]) -> AsyncIterator[int]:
    """The key of each new epoch with a fix that gpsd reports (``received`` holds those seen:
    gpsd 3.22 reports some epochs twice)."""
    async for item in source.fixes():
        if item is None or item.mode < FixMode.FIX_2D:
            continue
        k = key(item)
        if not (received and k == received[-1]):
            yield k


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RealGpsd:
    """``gpsd -N`` (foreground) on one device, a loopback port and a private control socket.

    Without ``-n``: gpsd opens the device when a client watches, so the FakeReceiver (which
    writes only while someone reads) starts its log when the source under test is listening.
    ``-b``: read only, never reconfigure the "receiver".
    """

    def __init__(self, device: Path, tmp: Path) -> None:
        self.device = device
        self.control = tmp / "gpsd.sock"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert GPSD is not None
        self.proc = subprocess.Popen(
            [
                GPSD,
                "-N",
                "-n",
                "-b",
                "-F",
                str(self.control),
                "-S",
                str(self.port),
                str(self.device),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError("gpsd did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def effective_gid(self) -> int:
        """The group gpsd runs as once it dropped root (what a replugged device must allow)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        gid = next(line for line in status.splitlines() if line.startswith("Gid:"))
        return int(gid.split()[2])

    def hotplug(self, sign: str, device: str | Path | None = None) -> str:
        """What udev's gpsd.hotplug does: ``-path`` when a receiver goes, ``+path`` when back
        (``device`` defaults to the one gpsd started with). gpsd's answer: OK or ERROR."""
        with socket.socket(socket.AF_UNIX) as ctl:
            ctl.connect(str(self.control))
            ctl.sendall(f"{sign}{device or self.device}\n".encode())
            return ctl.recv(64).decode().strip()


async def until_played(
    receiver: FakeReceiver, consume: Coroutine[None, None, None], finished: Callable[[], bool]
) -> None:
    """Run ``consume`` until ``finished()`` or the receiver's log is out and gpsd had time."""
    task = asyncio.create_task(consume)
    try:
        async with asyncio.timeout(SAFETY_TIMEOUT_S):
            while not receiver.done.is_set() and not finished() and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + SETTLE_S
            while not finished() and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


@pytest.fixture
def gpsd_on(tmp_path: Path) -> Iterator[type[RealGpsd]]:
    started: list[RealGpsd] = []

    class Tracked(RealGpsd):
        def start(self) -> None:
            started.append(self)
            super().start()

    yield Tracked
    for daemon in started:
        daemon.stop()


def excerpt(parts: tuple[str, str], epochs: int) -> list[bytes]:
    """The first ``epochs`` receiver epochs of a recording, as lines."""
    lines: list[bytes] = []
    decoder = FixDecoder()
    for line in iter_log_lines(shared_file(*parts)):
        if decoder.stats.epochs >= epochs:
            break
        decoder.feed(line)
        lines.append(line)
    return lines


def offline(lines: list[bytes]) -> list[Fix]:
    decoder = FixDecoder()
    return [*decoder.feed(b"".join(lines)), *decoder.flush()]


@pytest.mark.parametrize(
    ("recording", "epochs", "rate_hz"),
    [
        (("gpsd", "haicom-305N.log"), 74, 25.0),
        (("tracks", "ROB__tomales_data.shrinked.nmea"), 300, 50.0),
    ],
    ids=["haicom-305N", "tomales-track"],
)
async def test_gpsd_fixes_agree_with_tracker_fixes(
    gpsd_on: type[RealGpsd], tmp_path: Path, recording: tuple[str, str], epochs: int,
    rate_hz: float,
) -> None:  # fmt: skip
    lines = excerpt(recording, epochs)
    settings = FilterSettings()
    ours = FixFilter(settings.max_hdop, settings.max_speed_mps)
    reference = [f for f in offline(lines) if ours.accept(f) is None]
    with FakeReceiver(lines, link=tmp_path / "gps0", rate_hz=rate_hz) as receiver:
        daemon = gpsd_on(receiver.path, tmp_path)
        daemon.start()
        source = GpsdSource("127.0.0.1", daemon.port, retry=FAST_RECONNECT)
        stream = FixStream(source, FixFilter(settings.max_hdop, settings.max_speed_mps))
        got: dict[int, Fix] = {}

        async def collect() -> None:
            async for fix in stream:
                got[key(fix)] = fix

        await until_played(receiver, collect(), lambda: key(reference[-1]) in got)
        await source.aclose()
    agree = [
        f for f in reference
        if (g := got.get(key(f))) is not None
        and abs(g.lat - f.lat) < 1e-6 and abs(g.lon - f.lon) < 1e-6
    ]  # fmt: skip
    # gpsd discards what arrives while it hunts for the receiver's speed and protocol just
    # after it opens the device (about half a second here): compare from its first report on.
    first = min(got)
    compared = [f for f in reference if key(f) >= first]
    assert len(compared) >= 0.8 * len(reference)
    agree = [f for f in agree if key(f) >= first]
    assert len(agree) >= 0.99 * len(compared), (len(agree), len(compared))


async def test_gpsd_absent_at_start_and_restarted_mid_ride_are_survived(
    gpsd_on: type[RealGpsd], tmp_path: Path
) -> None:
    lines = excerpt(("tracks", "ROB__tomales_data.shrinked.nmea"), 300)
    expected = [key(f) for f in offline(lines) if f.mode >= FixMode.FIX_2D]
    received: list[int] = []
    recoveries: list[int] = []  # positions in `received` where a recovery's first fix is
    with (
        structlog.testing.capture_logs() as logs,
        FakeReceiver(lines, link=tmp_path / "gps0", rate_hz=40.0) as receiver,
    ):
        daemon = gpsd_on(receiver.path, tmp_path)
        source = GpsdSource("127.0.0.1", daemon.port, retry=FAST_RECONNECT)
        stage = "absent"

        async def ride() -> None:
            nonlocal stage
            async for k in epoch_keys(source, received):
                if stage in ("absent", "restarting"):
                    recoveries.append(len(received))
                    stage = {"absent": "up", "restarting": "restarted"}[stage]
                received.append(k)
                if stage == "up" and len(received) >= 100:
                    stage = "restarting"
                    await asyncio.to_thread(daemon.stop)
                    await asyncio.to_thread(daemon.start)

        # gpsd is not running when the source starts; it comes after a few retries.
        asyncio.get_running_loop().call_later(0.3, daemon.start)
        await until_played(
            receiver, ride(), lambda: bool(received) and received[-1] == expected[-1]
        )
        await source.aclose()
    events = [entry["event"] for entry in logs]
    assert events.count("gpsd not reachable, retrying") == 1
    assert events.count("gpsd connection lost, retrying") == 1
    assert stage == "restarted", stage
    assert len(recoveries) == 2
    # After each recovery every epoch arrives, in order, up to the next incident (or the end).
    bounds = [*recoveries, len(received)]
    for start, end in itertools.pairwise(bounds):
        segment = received[start:end]
        first = expected.index(segment[0])
        assert segment == expected[first : first + len(segment)]
    assert received[-1] == expected[-1]


async def test_receiver_unplugged_and_replugged_under_gpsd_is_survived(
    gpsd_on: type[RealGpsd], tmp_path: Path
) -> None:
    lines = excerpt(("tracks", "ROB__tomales_data.shrinked.nmea"), 300)
    expected = [key(f) for f in offline(lines) if f.mode >= FixMode.FIX_2D]
    received: list[int] = []
    recoveries: list[int] = []
    answers: list[str] = []
    with (
        structlog.testing.capture_logs() as logs,
        FakeReceiver(lines, link=tmp_path / "gps0", rate_hz=40.0) as receiver,
    ):
        daemon = gpsd_on(receiver.path, tmp_path)
        daemon.start()
        source = GpsdSource("127.0.0.1", daemon.port, retry=FAST_RECONNECT)
        stage = "up"

        def unplug_and_replug() -> None:
            receiver.unplug()
            answers.append(daemon.hotplug("-"))  # udev's hook, as the receiver goes
            time.sleep(0.5)
            # A udev rule's group and mode, so gpsd (no longer root) can open the new pty.
            receiver.device_group = daemon.effective_gid()
            receiver.replug()
            answers.append(daemon.hotplug("+", receiver.path.resolve()))  # a new /dev/pts/N

        async def ride() -> None:
            nonlocal stage
            async for k in epoch_keys(source, received):
                if stage == "replugged":
                    recoveries.append(len(received))
                    stage = "recovered"
                received.append(k)
                if stage == "up" and len(received) >= 100:
                    await asyncio.to_thread(unplug_and_replug)
                    stage = "replugged"

        await until_played(
            receiver, ride(), lambda: bool(received) and received[-1] == expected[-1]
        )
        await source.aclose()
    assert answers == ["OK", "OK"]
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert warnings == ["gpsd lost the gps receiver"], warnings
    assert stage == "recovered", stage
    assert receiver.plugs == 2
    # Before the unplug, and from the recovery to the end, every epoch arrives in order.
    for start, end in itertools.pairwise([0, *recoveries, len(received)]):
        segment = received[start:end]
        first = expected.index(segment[0])
        assert segment == expected[first : first + len(segment)]
    assert received[-1] == expected[-1]
