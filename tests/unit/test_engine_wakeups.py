"""Nothing wakes without a reason (issue 17): a staging is committed at once (started from the
staging itself) when the last commit began commit_interval_s ago or more, else when that is so,
and nothing runs while nothing is staged; the LEDs look again only when an input of their state
changed; the supervisor and the fix stream say when theirs did. A fake clock drives the commit
task; the outbox is a real SQLite file in a temp dir."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tracker.bike.device_state import DeviceState
from tracker.config import ButtonSettings, FilterSettings, GpsSettings
from tracker.engine.controls import Controls
from tracker.engine.recorder import COMMIT_INTERVAL_S, FRESH_FIX_S, Recorder
from tracker.engine.supervisor import Supervisor
from tracker.gps.stream import open_fix_stream
from tracker.ride.activity import Trigger
from tracker.storage.fix_journal import JOURNAL_NAME, read_journal
from tracker.storage.outbox import Outbox

from ..conftest import shared_file
from .test_engine_parts import Parts, fix_at, new_sampler

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A monotonic clock and a sleep that returns only when the test moves the clock on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._waiting: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    @property
    def sleeping(self) -> int:
        """How many sleeps wait for the clock."""
        return len(self._waiting)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((self.now + seconds, done))
        await done

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in list(self._waiting):
            due, done = entry
            if due <= self.now + 1e-9:
                self._waiting.remove(entry)
                if not done.done():
                    done.set_result(None)
        await settle()


async def settle() -> None:
    """Let every task that can run, run (a handful of loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


class CountingOutbox(Outbox):
    """The real outbox, noting the clock at each commit the recorder asks for."""

    def __init__(self, path: Path, clock: FakeClock, **kw: float) -> None:
        super().__init__(path, monotonic=clock, **kw)
        self.clock = clock
        self.commit_calls: list[float] = []

    async def commit(self) -> None:
        self.commit_calls.append(self.clock.now)
        await super().commit()

    def start_commit(self, on_done: Callable[[], None] = lambda: None) -> bool:
        started = super().start_commit(on_done)
        if started:  # a commit begun from the staging itself, not awaited
            self.commit_calls.append(self.clock.now)
        return started


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (real time, bounded) for the outbox's SQLite thread to finish a write."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def recording(tmp_path: Path, clock: FakeClock, **kw: float) -> tuple[Parts, CountingOutbox]:
    box = CountingOutbox(tmp_path, clock, **kw)
    await box.open()
    parts = Parts(box)
    parts.recorder = Recorder(box, new_sampler, monotonic=clock, sleep=clock.sleep)
    parts.activities.recorder = parts.recorder
    await parts.activities.start(Trigger.COMMAND)  # its own commit, not the commit task's
    box.commit_calls.clear()
    return parts, box


async def test_a_staged_fix_is_on_disk_at_once_or_within_commit_interval_s_and_idle_means_asleep(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    parts, box = await recording(tmp_path, clock)
    rec = parts.recorder
    task = asyncio.create_task(rec.commit_forever())
    try:
        # Nothing staged: the task waits without a timer, however long.
        await settle()
        await clock.advance(3600.0)
        assert clock.sleeps == []
        assert box.commit_calls == []

        # The first staging after a quiet spell is committed at once, in the same wake-up.
        staged_at = clock.now
        done = box.commits
        rec.on_fix(fix_at(0))
        await until(lambda: box.commits == done + 1, "the first commit")
        assert box.commit_calls == [pytest.approx(staged_at)]  # the clock stood still
        assert clock.sleeps == []
        # One within commit_interval_s of that commit waits for the window: one timer, and a
        # third staging meanwhile joins the same commit.
        await clock.advance(0.2)
        rec.on_fix(fix_at(1))
        await settle()
        assert clock.sleeps == [pytest.approx(COMMIT_INTERVAL_S - 0.2)]
        await clock.advance(0.1)
        rec.on_fix(fix_at(2))
        await settle()
        await clock.advance(COMMIT_INTERVAL_S - 0.3 - 0.01)
        assert len(box.commit_calls) == 1
        await clock.advance(0.01)
        assert box.commit_calls[1] == pytest.approx(staged_at + COMMIT_INTERVAL_S)
        assert len(clock.sleeps) == 1
        await until(lambda: box.commits == done + 2, "the commit")
        # Both fixes are covered on disk: by the committed sampler state, or (fixes that kept
        # no point) by the fix journal that extends it.
        state = box.sampler_state(box.current().local_id)  # type: ignore[union-attr]
        journaled, _ = read_journal(tmp_path / JOURNAL_NAME)
        covered = [fix.unix for _, fix in journaled]
        if state is not None and state.last_fix_unix is not None:
            covered.append(state.last_fix_unix)
        assert max(covered) == fix_at(2).unix

        # Idle again: no further commit, no timer.
        await clock.advance(60.0)
        assert len(box.commit_calls) == 2
        assert len(clock.sleeps) == 1

        # A fix a second: each on disk in the wake-up that brought it, with no timer at all.
        for second in range(3, 13):
            staged_at = clock.now
            done = box.commits
            rec.on_fix(fix_at(second))
            await until(lambda done=done: box.commits == done + 1, "the commit")  # type: ignore[misc]
            assert box.commit_calls[-1] == pytest.approx(staged_at)  # the clock stood still
            await clock.advance(1.0)
        assert len(box.commit_calls) == 12
        assert len(clock.sleeps) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


async def test_memory_mode_tries_the_disk_again_after_retry_s_with_nothing_new(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    parts, box = await recording(tmp_path, clock, max_mb=0.3, retry_s=30.0)
    rec = parts.recorder
    local_id = box.current().local_id  # type: ignore[union-attr]
    # Fill the file to its bound (the outbox's own commits): it runs from memory then.
    second = 0
    while box.storage_error is None:
        for _ in range(300):
            rec.on_fix(fix_at(second, east_m=40.0 * (second % 2)))
            second += 1
        await box.commit()
    assert box.pending_count(local_id) > 0
    changes: list[float] = []
    rec.changed = lambda: changes.append(clock.now)
    box.commit_calls.clear()
    clock.now += 1.0  # the filling's last commit began a while ago
    task = asyncio.create_task(rec.commit_forever())
    try:
        rec.on_fix(fix_at(second))
        await settle()
        assert box.commit_calls == [pytest.approx(clock.now)]  # at once: no commit for a while
        await until(lambda: clock.sleeping == 1, "the commit and the retry's timer")
        # Nothing new comes; the disk is tried again retry_s later, not every 0.5 s.
        await clock.advance(29.0)
        assert len(box.commit_calls) == 1
        await clock.advance(1.0)
        assert len(box.commit_calls) == 2
        await until(lambda: clock.sleeping == 1, "the commit and the next retry's timer")
        # A fix meanwhile brings the next commit forward to its own commit_interval_s.
        rec.on_fix(fix_at(second + 1))
        await settle()
        await clock.advance(COMMIT_INTERVAL_S)
        assert len(box.commit_calls) == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


async def test_the_leds_look_again_only_when_an_input_changed(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    await box.open()
    parts = Parts(box)
    clock = [100.0]
    parts.recorder.monotonic = lambda: clock[0]

    class Leds:
        def __init__(self) -> None:
            self.shown: list[DeviceState] = []

        def on_short_press(self, callback: Callable[[], object]) -> None: ...
        def on_long_press(self, callback: Callable[[], object]) -> None: ...
        def show(self, state: DeviceState) -> None:
            self.shown.append(state)

        def show_shutting_down(self) -> None: ...
        def close(self) -> None: ...

    async def flush() -> None:
        await box.commit()

    controls = Controls(parts.activities, ButtonSettings(), status=parts.status, flush=flush)
    parts.recorder.changed = controls.changed
    leds = Leds()
    task = asyncio.create_task(controls.show_forever(leds, expires=parts.recorder.gps_changes_in))
    try:
        await settle()
        assert (controls.looks, leds.shown) == (1, [DeviceState.NO_RECEIVER])
        for _ in range(50):  # many loop turns, nothing changed: no look
            await asyncio.sleep(0)
        assert controls.looks == 1
        # The first fix (no stream status: the fixes themselves say "receiver, fix").
        parts.recorder.on_fix(fix_at(0))
        await settle()
        assert (controls.looks, leds.shown[-1]) == (2, DeviceState.IDLE_FIX)
        # More fixes while idle change nothing the LEDs show: no look.
        for second in range(1, 20):
            clock[0] += 1.0
            parts.recorder.on_fix(fix_at(second))
        await settle()
        assert controls.looks == 2
        assert parts.recorder.gps_changes_in() == pytest.approx(FRESH_FIX_S)
        # Many calls of changed() before the task runs: one look.
        for _ in range(5):
            controls.changed()
        await settle()
        assert controls.looks == 3
        assert leds.shown == [DeviceState.NO_RECEIVER, DeviceState.IDLE_FIX]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


async def test_the_leds_look_again_when_a_time_bound_input_expires(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    await box.open()
    parts = Parts(box)

    async def flush() -> None:
        await box.commit()

    controls = Controls(parts.activities, ButtonSettings(), status=parts.status, flush=flush)
    left = [0.01, None]
    task = asyncio.create_task(controls.show_forever(None, expires=lambda: left.pop(0)))
    try:
        await until(lambda: controls.looks == 2, "the look at the expiry")
        for _ in range(50):
            await asyncio.sleep(0)
        assert controls.looks == 2
        assert left == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


async def test_the_supervisor_says_when_a_task_fails_and_when_it_runs_again() -> None:
    said: list[bool] = []
    sup: Supervisor

    async def no_pause(_seconds: float) -> None:
        await asyncio.sleep(0)

    sup = Supervisor(sleep=no_pause, changed=lambda: said.append(sup.failed()))
    runs = 0
    back = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("glitch")
        back.set()
        await asyncio.Event().wait()

    sup.spawn("gps", flaky, restart=True)
    await asyncio.wait_for(back.wait(), 5)
    await sup.stop()
    assert said == [True, False]  # failed (LED: error), then running again


async def test_the_fix_stream_says_when_the_receiver_or_its_fix_comes_and_goes() -> None:
    log = shared_file("tracks", "ROB__tomales_data.shrinked.nmea")

    class Receiver:
        """A byte source: a few seconds of a real log, then unplugged (a break)."""

        kind = "nmea"
        present = False
        name = "test receiver"

        async def chunks(self) -> AsyncIterator[bytes]:
            lines = log.read_bytes().splitlines(keepends=True)[:40]
            self.present = True
            for line in lines:
                yield line
            self.present = False
            yield b""

        async def aclose(self) -> None: ...

    stream = open_fix_stream(GpsSettings(), FilterSettings(), source=Receiver())
    seen: list[tuple[bool, bool]] = []
    stream.on_status_change = lambda: seen.append((stream.receiver_present, stream.has_fix))
    fixes = [fix async for fix in stream]
    assert fixes  # the log has fixes (2D)
    # Receiver talking, then its first fix, then gone: three changes for 40 chunks, not 40.
    assert seen == [(True, False), (True, True), (False, False)]


def test_the_service_imports_no_unused_feature() -> None:
    """Importing the service, configuring the logs and choosing no GPIO import neither the
    console extras, nor gpiozero, nor the BLE stack, nor the HTTP client."""
    code = (
        "import sys\n"
        "from tracker.logs import configure_logging\n"
        "configure_logging('info', json=True)\n"
        "import tracker.engine.service\n"
        "from tracker.bike.gpio import select_pin_factory\n"
        "from tracker.config import GpioSettings\n"
        "assert select_pin_factory(GpioSettings(pin_factory='none')) is None\n"
        "heavy = {'rich', 'better_exceptions', 'gpiozero', 'bleak', 'aiohttp', 'authlib'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]", out.stderr
