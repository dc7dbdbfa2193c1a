"""The uplink against the real emulator and the real API client, with a fake clock.

Every rule of the uplink is checked on the server's side (what the emulator stored, how many
requests of which kind, how many duplicate points) and on the clock's side (which pauses).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tracker.config import ActivitySettings
from tracker.engine.uplink import Uplink
from tracker.mmt.gpx import build_gpx
from tracker.model import HeartRateSample
from tracker.ride.activity import ActivityState, Event
from tracker.storage.outbox import Outbox, activity_with

from .engine_support import T0, UPLINK, FakeSleep, emulator_and_client, outbox_and_uplink, ride


def count(emu: object, endpoint: str, outcome: str = "ok") -> int:
    counts = emu.request_counts()  # type: ignore[attr-defined]
    return int(counts.get(endpoint, {}).get(outcome, 0))


async def test_batches_first_points_with_start_and_stop_after_the_last(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Ride streamed")
        hr = [HeartRateSample(T0 + 1000 + i, 120 + i) for i in range(25)]
        box.stage(rec.local_id, ride(1000, 25), hr)
        await box.commit()
        await up.step()  # startActivity with the first batch
        (remote,) = emu.activities
        assert remote.title == "Ride streamed"
        assert len(remote.points) == 10
        await box.update_activity(box.record(rec.local_id).activity.apply(Event.STOP))
        await up.run_until_drained()
        assert [p.timestamp for p in remote.points] == list(range(T0 + 1000, T0 + 1025))
        assert [s.hr for s in remote.hr] == [120 + i for i in range(25)]
        assert remote.state == "stopped"
        assert remote.duplicates == 0
        assert count(emu, "startActivity") == 1
        assert count(emu, "updateActivity") == 2
        assert count(emu, "stopActivity") == 1
        assert box.record(rec.local_id).activity.state is ActivityState.STOPPED
        assert box.pending_count() == 0
        await box.close()


async def test_lost_reply_on_start_lands_on_the_same_activity(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Lost start reply")
        box.stage(rec.local_id, ride(0, 8))
        await box.commit()
        emu.set_faults(lost_reply_rate=1.0)
        pause = await up.step()
        assert up.status.state == "down"
        assert pause > 0
        assert box.record(rec.local_id).activity.remote_id is None
        emu.set_faults(lost_reply_rate=0.0)
        await up.step()
        (remote,) = emu.activities  # the retried start found the same title
        assert box.record(rec.local_id).activity.remote_id == remote.id
        assert len(remote.points) == 8
        assert remote.duplicates == 8  # exactly one batch repeated
        await box.close()


async def test_lost_update_reply_repeats_one_batch_at_most(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Lost update reply")
        box.stage(rec.local_id, ride(0, 30))
        await box.commit()
        await up.step()
        emu.set_faults(lost_reply_rate=1.0)
        await up.step()
        emu.set_faults(lost_reply_rate=0.0)
        await up.run_until_drained()
        (remote,) = emu.activities
        assert len(remote.points) == 30
        assert remote.duplicates == 10
        await box.close()


async def test_outage_backs_off_never_gives_up_then_drains_in_full_batches(
    tmp_path: Path,
) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Outage")
        box.stage(rec.local_id, ride(0, 5))
        await box.commit()
        await up.step()
        emu.set_faults(down=True)
        box.stage(rec.local_id, ride(5, 95))
        await box.commit()
        pauses = [await up.step() for _ in range(12)]
        assert up.status.state == "down"
        assert pauses[0] <= 1
        assert max(pauses) <= 60
        assert pauses[-1] >= 30  # grown to the cap's neighbourhood (jitter: 50 % at most)
        assert all(b >= a * 0.5 for a, b in itertools.pairwise(pauses))
        emu.set_faults(down=False)
        updates_before = count(emu, "updateActivity")
        sleep.sleeps.clear()
        await up.run_until_drained()
        (remote,) = emu.activities
        assert [p.timestamp for p in remote.points] == list(range(T0, T0 + 100))
        assert count(emu, "updateActivity") - updates_before == 10  # 95 points: full batches
        assert remote.duplicates == 0
        assert sleep.sleeps == [1.0] * 9  # a bounded rate: the drain pause between batches
        await box.close()


async def test_offline_ride_goes_up_live_exactly_once(tmp_path: Path) -> None:
    """Recorded fully offline, sent when the link is back through the idempotent live endpoints
    (persisted title, whole-second duplicates dropped): one activity, even with every reply of
    every endpoint lost while it goes up (uploadActivity has no idempotency handle: never used)."""
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        emu.set_faults(down=True)
        rec = await box.create_activity("Offline ride")
        box.stage(rec.local_id, ride(0, 40, step_s=5))
        await box.commit()
        await up.step()
        await box.update_activity(box.record(rec.local_id).activity.apply(Event.STOP))
        await up.step()
        emu.set_faults(down=False, lost_reply_rate=0.5, seed=3)
        for _ in range(30):  # lost replies on start, updates and stop
            await up.step()
        emu.set_faults(lost_reply_rate=0.0)
        await up.run_until_drained()
        (remote,) = emu.activities
        assert remote.state == "stopped"
        assert [p.timestamp for p in remote.points] == list(range(T0, T0 + 200, 5))
        lost = sum(n for (_, outcome), n in remote.requests.items() if outcome == "lost_reply")
        assert lost >= 3
        assert count(emu, "uploadActivity") == 0
        assert box.record(rec.local_id).activity.state is ActivityState.STOPPED
        await box.close()


async def test_permanent_rejections_fall_back_to_gpx_upload(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Rejected")
        box.stage(rec.local_id, ride(0, 10))
        await box.commit()
        await up.step()
        (remote,) = emu.activities
        await client.stop_activity(remote.id)  # closed behind our back: updates now get 403
        box.stage(rec.local_id, ride(10, 10))
        await box.commit()
        for _ in range(3):
            await up.step()
        assert box.record(rec.local_id).activity.upload_only
        box.stage(rec.local_id, ride(20, 5))
        await box.commit()
        await box.update_activity(box.record(rec.local_id).activity.apply(Event.STOP))
        await up.run_until_drained()
        uploaded = [a for a in emu.activities if a.state == "uploaded"]
        assert len(uploaded) == 1
        assert [p.timestamp for p in uploaded[0].points] == list(range(T0, T0 + 25))
        await box.close()


async def test_revoked_login_keeps_points_and_resumes_after_login(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Login lost")
        box.stage(rec.local_id, ride(0, 5))
        await box.commit()
        await up.step()
        stored = client.token_store.load_tokens()
        assert stored is not None
        await client.oauth.revoke(stored["refresh_token"], "refresh_token")
        box.stage(rec.local_id, ride(5, 5))
        await box.commit()
        await up.step()
        assert up.status.state == "login_needed"
        assert box.pending_count(rec.local_id) == 5
        client.token_store.save(emu.issue_tokens())  # `tracker login` in another process
        await up.step()
        assert up.status.state == "up"
        (remote,) = emu.activities
        assert len(remote.points) == 10
        await box.close()


async def test_token_expiry_mid_ride_is_invisible(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Expiry")
        box.stage(rec.local_id, ride(0, 5))
        await box.commit()
        await up.step()
        emu.advance_clock(10 * 86400)  # every access token is long expired now
        box.stage(rec.local_id, ride(5, 5))
        await box.commit()
        await up.step()
        assert up.status.state == "up"
        (remote,) = emu.activities
        assert len(remote.points) == 10
        await box.close()


@pytest.mark.parametrize("retry_after", [42.0])
async def test_retry_after_is_honoured(tmp_path: Path, retry_after: float) -> None:
    from tracker.errors import RetryableApiError

    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (_emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Rate limited")
        delay = await up._failed(
            box.record(rec.local_id), RetryableApiError("429", status=429, retry_after=retry_after)
        )
        assert delay == retry_after
        await box.close()
    _ = activity_with


async def test_stop_never_overtakes_points_still_being_committed(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Last points in flight")
        box.stage(rec.local_id, ride(0, 5))
        await box.commit()
        await up.step()
        # The engine's stop: the sampler's last points are staged and the state is already
        # STOPPING while the commit that carries them waits for the database.
        box.stage(rec.local_id, ride(5, 3))
        rec.activity = rec.activity.apply(Event.STOP)
        await up.step()
        assert count(emu, "stopActivity") == 0
        assert emu.activities[0].state == "live"
        await box.commit()
        await up.run_until_drained()
        (remote,) = emu.activities
        assert remote.state == "stopped"
        assert [p.timestamp for p in remote.points] == [p.timestamp for p in ride(0, 8)]
        await box.close()


def uplink_without_api(box: Outbox, sleep: Callable[[float], Awaitable[None]]) -> Uplink:
    """An uplink for an outbox with nothing to send: it never reaches its API."""
    return Uplink(
        box,
        object(),  # type: ignore[arg-type]
        UPLINK,
        ActivitySettings(),
        build_gpx=build_gpx,
        sleep=sleep,
    )


async def test_cancelling_the_running_uplink_ends_it_even_mid_pause(tmp_path: Path) -> None:
    """A service shutdown cancels the uplink; the cancellation must never be swallowed."""
    box = Outbox(tmp_path / "data")
    await box.open()
    task_ref: list[asyncio.Task[None]] = []

    async def sleep(_seconds: float) -> None:
        # Deliver the shutdown's cancel exactly when the pause has ended and is dismissing its
        # helper tasks (three loop turns later: the turn in which the uplink wakes up).
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: loop.call_soon(lambda: loop.call_soon(task_ref[0].cancel)))

    up = uplink_without_api(box, sleep)
    task_ref.append(asyncio.create_task(up.run()))
    for _ in range(5):  # nothing to send: the uplink waits for work, with no pause
        await asyncio.sleep(0)
    up.points_ready()  # a commit made points sendable: the batch interval's pause follows
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task_ref[0], 5)
    await box.close()


async def test_an_idle_uplink_runs_no_timer_until_points_are_ready(tmp_path: Path) -> None:
    """Nothing wakes without a reason (issue 17): with nothing to send the uplink sleeps
    without a timer; points made sendable start one batch interval; a start/stop wakes it."""
    box = Outbox(tmp_path / "data")
    await box.open()
    pauses: list[float] = []
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await gate.wait()

    up = uplink_without_api(box, sleep)
    task = asyncio.create_task(up.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0)
        assert pauses == []  # idle: no timer at all
        up.wake()  # a start or a stop: a step at once, nothing to do, idle again
        for _ in range(50):
            await asyncio.sleep(0)
        assert pauses == []
        up.points_ready()  # a commit: the batch interval runs, then a step
        for _ in range(50):
            await asyncio.sleep(0)
        assert pauses == [UPLINK.batch_interval_s]
        gate.set()
        for _ in range(50):
            await asyncio.sleep(0)
        assert pauses == [UPLINK.batch_interval_s]  # the step found nothing: idle again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()
