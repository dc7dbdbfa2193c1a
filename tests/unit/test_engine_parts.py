"""The engine's parts alone, through their public methods: supervisor, recorder, activities,
controls and the typed status. Real SQLite outbox in a temp dir, the real sampler, a fake sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracker.bike.device_state import DeviceState
from tracker.config import ActivitySettings, ButtonSettings
from tracker.engine.activities import Activities
from tracker.engine.controls import Controls
from tracker.engine.recorder import Recorder, SamplerLike
from tracker.engine.status import LoginSection, ServiceStatus, build_status
from tracker.engine.supervisor import Supervisor
from tracker.model import Fix, FixMode, HeartRateSample
from tracker.retry import SUPERVISOR
from tracker.ride.activity import ActivityState, Trigger
from tracker.ride.sampler import Sampler
from tracker.storage.outbox import Outbox

T0 = 1_760_000_000


def fix_at(second: int, *, east_m: float = 0.0) -> Fix:
    unix = float(T0 + second)
    return Fix(
        time=datetime.fromtimestamp(unix, UTC),
        unix=unix,
        lat=45.0 + second * 2e-4,  # ~22 m a second, heading north
        lon=7.0 + east_m / 78_600,
        mode=FixMode.FIX_3D,
        alt_msl=200.0,
        speed_mps=22.0,
        sats=9,
        hdop=0.9,
    )


def new_sampler(snapshot: dict[str, Any] | None) -> SamplerLike:
    if snapshot is not None:
        return Sampler.restore(snapshot)
    return Sampler(max_error_m=10.0, max_delay_s=30)


class Parts:
    """A recorder and the start/stop use cases over a real outbox, as the service wires them."""

    def __init__(self, outbox: Outbox, *, autostart: bool = False) -> None:
        self.outbox = outbox
        self.clock = 100.0
        self.recorder = Recorder(outbox, new_sampler, monotonic=lambda: self.clock)
        self.changes = 0
        self.activities = Activities(
            outbox, self.recorder, ActivitySettings(autostart=autostart), changed=self._changed
        )

    def _changed(self) -> None:
        self.changes += 1

    def status(self) -> ServiceStatus:
        return build_status(
            pid=1,
            uptime_s=5.0,
            gps=self.recorder.gps(),
            counters=self.recorder.counters,
            outbox=self.outbox,
            link=None,
            login=LoginSection("logged_in", 3600.0),
            heart_rate={"state": "disabled"},
            tasks={},
        )


async def opened(path: Path) -> Outbox:
    box = Outbox(path)
    await box.open()
    return box


# -- supervisor ----------------------------------------------------------------------------------


async def test_supervisor_restarts_a_failing_task_after_the_declared_pauses() -> None:
    pauses: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise OSError(f"glitch {runs}")
        done.set()
        await asyncio.Event().wait()  # then it runs, like a receiver that came back

    sup = Supervisor(sleep=fake_sleep)
    sup.spawn("gps", flaky, restart=True)
    await asyncio.wait_for(done.wait(), 5)
    assert not sup.failed()  # it came back
    await sup.stop()
    assert pauses == [SUPERVISOR.delay(n, 0.0, None) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert sup.health["gps"].restarts == 3
    assert sup.health["gps"].last_error == "OSError: glitch 3"


async def test_supervisor_leaves_a_non_restarting_task_failed_and_says_so() -> None:
    async def broken() -> None:
        raise RuntimeError("no watchdog")

    sup = Supervisor()
    sup.spawn("watchdog", broken, restart=False)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sup.failed()
    sup.note_error("heart_rate", "bad device")
    assert sup.health["heart_rate"].last_error == "bad device"
    assert sup.health["heart_rate"].restarts == 0
    await sup.stop()


# -- recorder and activities ---------------------------------------------------------------------


async def test_the_sampler_state_on_disk_matches_the_points_committed(tmp_path: Path) -> None:
    box = await opened(tmp_path)
    parts = Parts(box)
    rec, started = await parts.activities.start(Trigger.COMMAND)
    assert started
    assert parts.changes == 1
    for second in range(20):
        parts.recorder.on_fix(fix_at(second, east_m=30.0 * (second % 3 == 0)))
    await box.commit()
    parts.recorder.on_fix(fix_at(20))  # fed after the commit: not part of its state
    state = box.sampler_state(rec.local_id)
    assert state is not None
    assert state.last_fix_unix == T0 + 19
    # A sampler restored from the committed state goes on exactly like the live one would have
    # from the same point: the disk never pairs a state with points it did not produce.
    live = Sampler.restore(json.loads(json.dumps(state.snapshot)))
    assert live.snapshot() == json.loads(json.dumps(state.snapshot))
    assert parts.recorder.counters.fixes_recorded == 21
    await box.close()


async def test_a_resumed_recording_skips_fixes_it_has_seen_and_stages_heart_rate(
    tmp_path: Path,
) -> None:
    box = await opened(tmp_path)
    parts = Parts(box)
    await parts.activities.start(Trigger.BUTTON)
    for second in range(10):
        parts.recorder.on_fix(fix_at(second))
    await box.close()  # a restart, not a stop

    box = await opened(tmp_path)
    again = Parts(box)
    rec = again.recorder.resume()
    assert rec is not None
    assert rec.activity.state is ActivityState.RECORDING
    for second in range(5, 15):
        again.recorder.on_fix(fix_at(second))
    assert again.recorder.counters.stale_fixes == 5
    assert again.recorder.counters.fixes_recorded == 5
    again.recorder.on_heart_rate(HeartRateSample(T0 + 14, 120))
    assert again.recorder.counters.hr_samples == 1
    stopped = await again.activities.stop(Trigger.COMMAND)
    assert stopped is not None
    kept = box.record(rec.local_id)
    assert kept.activity.state is ActivityState.STOPPING
    points, hr = box.pending(rec.local_id, 10_000)
    assert points[-1].timestamp == T0 + 14  # flushed: the last fix is a point
    assert [s.hr for s in hr] == [120]
    await box.close()


async def test_toggle_follows_the_state_machine_and_autostart_fires_once(tmp_path: Path) -> None:
    box = await opened(tmp_path)
    parts = Parts(box, autostart=True)

    async def fixes(n: int) -> AsyncIterator[Fix]:
        for second in range(n):
            yield fix_at(second)

    await parts.recorder.record(fixes(3), before_each=parts.activities.autostart)
    first = parts.activities.current()
    assert first is not None  # autostarted on the first fix
    assert parts.recorder.counters.fixes_recorded == 3
    await parts.activities.toggle(Trigger.BUTTON)  # recording → stop
    assert parts.activities.current() is None
    await parts.activities.autostart()  # disarmed by the stop
    assert parts.activities.current() is None
    await parts.activities.toggle(Trigger.BUTTON)  # idle → a new activity
    second = parts.activities.current()
    assert second is not None
    assert second.local_id != first.local_id
    await box.close()


# -- controls and status -------------------------------------------------------------------------


async def test_control_commands_and_the_led_read_one_typed_status(tmp_path: Path) -> None:
    box = await opened(tmp_path)
    parts = Parts(box)

    async def flush() -> None:
        await box.commit()

    controls = Controls(
        parts.activities, ButtonSettings(), status=parts.status, flush=flush
    )
    reply = await controls.command("status", {})
    assert reply["ok"] is True
    assert reply["status"]["device_state"] == "no_receiver"
    started = await controls.command("start", {})
    assert started["ok"] is True
    assert started["started"] is True
    again = await controls.command("start", {})
    assert again == {"ok": True, "started": False, "activity": started["activity"]}
    parts.recorder.on_fix(fix_at(0))
    st = parts.status()
    assert st.recording
    assert st.gps.has_fix
    assert st.device_state is DeviceState.RECORDING_LIVE
    assert st.activity is not None
    assert st.activity.title == started["activity"]
    stopped = await controls.command("stop", {})
    assert stopped == {"ok": True, "stopped": True, "activity": started["activity"]}
    assert (await controls.command("stop", {}))["stopped"] is False
    unknown = await controls.command("reboot", {})
    assert unknown["ok"] is False
    assert "unknown command" in unknown["error"]
    await box.close()


async def test_the_status_json_round_trips_into_the_same_typed_snapshot(tmp_path: Path) -> None:
    box = await opened(tmp_path)
    parts = Parts(box)
    await parts.activities.start(Trigger.COMMAND)
    for second in range(5):
        parts.recorder.on_fix(fix_at(second))
    await box.commit()
    st = parts.status()
    wire = json.loads(json.dumps(st.as_json()))
    assert ServiceStatus.from_json(wire) == st
    assert st.storage.used_bytes is not None
    assert st.storage.used_bytes > 0
    assert wire["storage"]["used_bytes"] == st.storage.used_bytes
    await box.close()
