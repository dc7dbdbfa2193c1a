"""The end-to-end demo ride: every real part of the tracker, no hardware and no account.

What runs, all of it real: the Map My Tracks emulator (auto-approve) on a free loopback port; the
OAuth login against it; a recorded NMEA track from ``../shared/data/tracks/`` played through a
pseudo-terminal (FakeReceiver) at high speed and read by the serial source; the service itself
(parser, filters, sampler, SQLite outbox, uplink, API client); gpiozero's MockFactory for the
button (its pin is driven low and high, like a finger) and the LEDs. Midway the emulator goes
down for 20 seconds (a real outage: connections are closed), and one reply is lost after the
server applied the request. Between the tracker and the emulator sits a byte-counting TCP proxy,
so the summary reports the bytes really sent on the wire, headers included.

The service is handed in by the caller (``tracker.commands.demo``): the demo needs only what
:class:`DemoService` says of it, and reads its state through the engine's typed status.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from tracker.config import Settings
from tracker.engine.status import ServiceStatus
from tracker.errors import TrackerError
from tracker.logs import configure_logging, get_logger

if TYPE_CHECKING:
    from tracker.emulator.runner import EmulatorHandle
    from tracker.gps.stream import FixStream

log = get_logger("demo")

DEFAULT_TRACK = "NmeaParser__NmeaSampleData.txt"  # a car near Lake Tahoe, 0.5 Hz
BUNDLED_TRACK = Path(__file__).resolve().parent / "data" / "demo-ride.nmea"  # its first 17 min


def emulator_settings(settings: Settings, emu: EmulatorHandle, data_dir: Path) -> Settings:
    """``settings`` with its data in ``data_dir`` and the API pointed straight at the emulator
    ``emu`` (its base URL and application, a 5 s timeout)."""
    s = settings.replace("storage", data_dir=str(data_dir))
    return s.replace(
        "api",
        base_url=emu.base_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        timeout_s=5.0,
    )


def find_track(explicit: str | None) -> Path:
    """The recording to ride: --track, else the default one in ../shared/data/tracks/."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise TrackerError(f"{path}: no such track file")
        return path
    roots = []
    if os.environ.get("TRACKER_SHARED_DATA"):
        roots.append(Path(os.environ["TRACKER_SHARED_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    roots += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for root in roots:
        candidate = root / "tracks" / DEFAULT_TRACK
        if candidate.is_file():
            return candidate
    # Not beside a ../shared checkout: ride the excerpt of the same track bundled with the
    # package (attribution in tracker/data/NOTICE.md), so the demo runs anywhere.
    if BUNDLED_TRACK.is_file():
        return BUNDLED_TRACK
    raise TrackerError(
        f"the demo's recorded track {DEFAULT_TRACK} was not found under "
        f"{', '.join(str(r / 'tracks') for r in roots)}; pass --track FILE (any NMEA log)"
    )


# -- a byte-counting TCP proxy ----------------------------------------------------------------


class CountingProxy:
    """A loopback TCP relay that counts the bytes each way (what really goes on the wire)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.bytes_up = 0  # tracker → server: requests with their headers
        self.bytes_down = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        for task in list(self._pipes):
            with contextlib.suppress(BaseException):
                await task

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        tasks = [
            asyncio.ensure_future(pipe(reader, up_writer, True)),
            asyncio.ensure_future(pipe(up_reader, writer, False)),
        ]
        for task in tasks:
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the demo ---------------------------------------------------------------------------------


@dataclass
class DemoSummary:
    fixes: int = 0
    points_kept: int = 0
    points_on_server: int = 0
    hr_on_server: int = 0
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    duplicates: int = 0
    activities: int = 0
    state: str = ""
    page_url: str = ""
    data_dir: str = ""
    ride_s: float = 0.0
    wall_s: float = 0.0

    def lines(self) -> list[str]:
        total = sum(sum(c.values()) for c in self.requests.values())
        by_endpoint = ", ".join(
            f"{name} {sum(c.values())}"
            for name, c in sorted(self.requests.items())
            if not name.startswith("oauth")
        )
        fault_counts: dict[str, int] = {}
        for name, c in self.requests.items():
            for k, v in c.items():
                if k != "ok" and not name.startswith("oauth"):
                    fault_counts[k] = fault_counts.get(k, 0) + v
        return [
            f"ride: {self.ride_s / 60:.1f} min of recorded driving in {self.wall_s:.0f} s",
            f"fixes received: {self.fixes}",
            f"points kept (sampler, 10 m): {self.points_kept}"
            f"  ({self.fixes / max(1, self.points_kept):.0f}x fewer than fixes)",
            f"points on the server: {self.points_on_server} in {self.activities} activity,"
            f" state {self.state}",
            f"heart-rate samples on the server: {self.hr_on_server} (a replayed strap)",
            f"requests: {total} ({by_endpoint}); faults met: "
            + (", ".join(f"{k} {v}" for k, v in sorted(fault_counts.items())) or "none"),
            f"bytes sent on the wire (headers included): {self.bytes_sent}"
            f" (received {self.bytes_received})",
            f"duplicate points (from the lost reply, at most one batch): {self.duplicates}",
            f"the emulator's page: {self.page_url}",
            f"data dir: {self.data_dir} (GPX: `tracker export --data-dir {self.data_dir}`)",
        ]


class DemoService(Protocol):
    """What the demo needs of ``tracker.engine.service.Service``."""

    async def run(self) -> None: ...
    async def wait_ready(self) -> None: ...
    def stop(self) -> None: ...
    def status(self) -> ServiceStatus: ...


ServiceFactory = Callable[..., DemoService]


async def run_demo(
    settings: Settings,
    service_factory: ServiceFactory,
    *,
    track: Path,
    speed: float = 12.0,
    ride_s: float = 55.0,
    outage_at_s: float = 12.0,
    outage_s: float = 20.0,
    lost_reply_at_s: float = 40.0,
    out: TextIO | None = None,
    keep_open: bool = False,
    data_dir: Path | None = None,
) -> DemoSummary:
    """Ride ``track`` for ``ride_s`` wall seconds at ``speed``× through the whole tracker."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from tracker.emulator.runner import running_emulator
    from tracker.gps.fake import FakeReceiver
    from tracker.gps.stream import open_fix_stream
    from tracker.mmt.client import MapMyTracksClient
    from tracker.mmt.login import login
    from tracker.mmt.tokens import TokenStore

    out = out or sys.stdout
    live = out.isatty()
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tracker-demo-"))
    log_file = (data_dir / "demo.log").open("w", encoding="utf-8")
    configure_logging("info", stream=log_file)  # the terminal belongs to the status line
    summary = DemoSummary(data_dir=str(data_dir))
    started = time.monotonic()
    say = _printer(out)
    say(f"tracker demo: riding {track.name} at {speed:g}x, logs in {data_dir / 'demo.log'}")

    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    button_pin = Device.pin_factory.pin(settings.button.pin)

    async with (
        running_emulator(port=0, auto_approve=True) as emu,
        CountingProxy(emu.host, emu.port) as proxy,
    ):
        summary.page_url = emu.inspect_url
        say(f"emulator: {emu.base_url} (page {emu.inspect_url})")
        direct = emulator_settings(settings, emu, data_dir)
        store = TokenStore.in_dir(data_dir)
        await login(
            direct.api,
            store,
            open_browser=False,
            port=0,
            out=io.StringIO(),
            on_authorize_url=_approve_in_the_background,
        )
        say("login: approved in the emulator, tokens stored (0600)")
        s = direct.replace("api", base_url=proxy.url("/api3"))
        s = s.replace("gpio", pin_factory="auto")
        s = s.replace(
            "uplink",
            batch_interval_s=max(0.5, 10.0 / speed),
            drain_interval_s=0.2,
            max_backoff_s=4.0,
        )
        s = s.replace("activity", autostart=False, title_prefix="Demo ride")
        # A pretend heart-rate strap: the same source and pipeline as a real one, only the radio
        # replaced. The user's recorded series (`[heart_rate] device = "replay:FILE"`), else a
        # synthetic ride (docs/heart-rate.md).
        hr_device = settings.heart_rate.device
        if not hr_device.startswith("replay:"):
            hr_device = "synthetic"
        s = s.replace("heart_rate", enabled=True, device=hr_device)
        with FakeReceiver(track, speed=speed, max_gap_s=10.0) as receiver:
            s = s.replace(
                "gps", source="serial", device=str(receiver.path), baud=9600, system_clock="ignore"
            )

            def fix_stream() -> FixStream:
                # Keep the recording's own dates (a live receiver's week-rollover fix-up would
                # move a 2005 log to 2025).
                return open_fix_stream(s.gps, s.filters, rollover_floor=None)

            service = service_factory(
                s,
                fix_stream=fix_stream,
                handle_signals=False,
                client_factory=lambda: MapMyTracksClient(s.api, store),
                stop_on_stream_end=True,
            )
            task = asyncio.create_task(service.run())
            try:
                await asyncio.wait_for(service.wait_ready(), 30)
                await _until(lambda: service.status().engine.fixes > 0, 30)
                await _press(button_pin)
                say("button pressed: activity started")
                t0 = time.monotonic()
                outage_done = lost_done = False
                next_line = 0.0
                while (elapsed := time.monotonic() - t0) < ride_s:
                    if not outage_done and elapsed >= outage_at_s:
                        outage_done = True
                        emu.set_faults(down=True)
                        say(f"-- outage: the emulator is down for {outage_s:g} s --", live)
                        asyncio.get_running_loop().call_later(
                            outage_s, lambda: _end_outage(emu, say, live)
                        )
                    if not lost_done and elapsed >= lost_reply_at_s:
                        lost_done = True
                        emu.set_faults(lost_reply_rate=1.0)
                        await _until(lambda: _lost_replies(emu) >= 1, 30)
                        emu.set_faults(lost_reply_rate=0.0)
                        say("-- one reply lost after the server applied the request --", live)
                    if elapsed >= next_line:
                        _status_line(out, service, elapsed * speed, live)
                        next_line = elapsed + (0.5 if live else 5.0)
                    await asyncio.sleep(0.1)
                await _press(button_pin)
                say(
                    "button pressed: activity stopping (the rest goes out, then stopActivity)", live
                )
                await _until(lambda: _stopped(emu), 120)
                _status_line(out, service, (time.monotonic() - t0) * speed, live)
                if live:
                    out.write("\n")
                summary.ride_s = (time.monotonic() - t0) * speed
            finally:
                service.stop()
                await asyncio.wait_for(task, 30)
        engine = service.status().engine
        summary.fixes = engine.fixes
        summary.points_kept = engine.points_kept
        summary.requests = emu.request_counts()
        summary.bytes_sent = proxy.bytes_up
        summary.bytes_received = proxy.bytes_down
        summary.activities = len(emu.activities)
        if emu.activities:
            remote = emu.activities[-1]
            summary.points_on_server = len(remote.points)
            summary.hr_on_server = len(remote.hr)
            summary.duplicates = remote.duplicates
            summary.state = remote.state
        summary.wall_s = time.monotonic() - started
        say("")
        for line in summary.lines():
            say(line)
        if keep_open:
            say("the emulator stays up so you can open its page; press Enter to end the demo")
            await asyncio.to_thread(sys.stdin.readline)
    configure_logging("warning")  # back to the terminal before the file closes
    log_file.close()
    Device.pin_factory = None
    return summary


def _printer(out: TextIO) -> Callable[..., None]:
    def say(text: str, live: bool = False) -> None:
        if live:
            out.write("\r\x1b[K")
        out.write(text + "\n")
        out.flush()

    return say


def _end_outage(emu: EmulatorHandle, say: Callable[..., None], live: bool) -> None:
    emu.set_faults(down=False)
    say("-- outage over: the backlog drains in full batches --", live)


def _lost_replies(emu: EmulatorHandle) -> int:
    return sum(c.get("lost_reply", 0) for c in emu.request_counts().values())


def _stopped(emu: EmulatorHandle) -> bool:
    return bool(emu.activities) and emu.activities[-1].state in ("stopped", "uploaded")


async def _press(pin: Any) -> None:
    """A finger on the button: pulled-up input driven low for 0.2 s (a short press)."""
    pin.drive_low()
    await asyncio.sleep(0.2)
    pin.drive_high()
    await asyncio.sleep(0.05)


async def _until(predicate: Callable[[], bool], limit_s: float) -> None:
    """Wait for the emulator or the service to reach a state (they offer no event)."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - state of another party, polled
            await asyncio.sleep(0.1)


async def _approve_in_the_background(url: str) -> None:
    """Play the browser: open the authorize URL; auto-approve redirects to our callback."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as reply:
        await reply.read()


def _status_line(out: TextIO, service: DemoService, ride_s: float, live: bool) -> None:
    st = service.status()
    text = (
        f"ride {int(ride_s // 60):02d}:{int(ride_s % 60):02d}"
        f" | fixes {st.engine.fixes}"
        f" | kept {st.engine.points_kept}"
        f" | sent {st.activity.points_sent if st.activity else 0}"
        f" | waiting {st.points_waiting}"
        f" | link {st.uplink.link}"
        f" | requests {st.uplink.requests}"
        f" | LED {st.device_state.value}"
        f" | HR {st.heart_rate.get('last_hr') or '-'}"
    )
    if live:
        out.write("\r\x1b[K" + text)
    else:
        out.write(text + "\n")
    out.flush()
