"""Every ride reaches the server exactly once, and no ride holds back another (issue 14, 1-3).

Adversarial cases, each a defect that was reproduced on the old uplink: a ride stopped before its
first point (it stayed ``stopping`` and blocked every later ride, for good); a ride whose GPX the
server refuses (retried forever, blocking the next ride); an offline ride whose replies are lost
(``uploadActivity`` after each lost reply made another copy). Real emulator, real SQLite outbox,
virtual time.
"""

from __future__ import annotations

from pathlib import Path

from tracker.engine.uplink import Uplink
from tracker.model import HeartRateSample
from tracker.ride.activity import ActivityState, Event
from tracker.storage.outbox import ActivityRecord, Outbox

from .engine_support import T0, FakeSleep, emulator_and_client, outbox_and_uplink, ride


async def stop(box: Outbox, local_id: int) -> None:
    await box.update_activity(box.record(local_id).activity.apply(Event.STOP))


async def test_a_ride_stopped_before_its_first_point_is_closed_locally(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        empty = await box.create_activity("Double press")
        await stop(box, empty.local_id)
        real = await box.create_activity("Real ride")
        box.stage(real.local_id, ride(0, 25))
        await box.commit()
        await stop(box, real.local_id)
        await up.run_until_drained()
        assert box.record(empty.local_id).activity.state is ActivityState.DISCARDED
        assert box.record(real.local_id).activity.state is ActivityState.STOPPED
        (remote,) = emu.activities  # the empty ride was never sent
        assert remote.title == "Real ride"
        assert remote.state == "stopped"
        assert len(remote.points) == 25
        await box.close()

    # ... and after a restart an old stuck empty ride no longer blocks either.
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path / "again") as (emu, client):
        box, up = await outbox_and_uplink(tmp_path / "again", client, sleep)
        await stop(box, (await box.create_activity("Empty")).local_id)
        await box.close()
        # The service restarted:
        box, up = await outbox_and_uplink(tmp_path / "again", client, sleep)
        later = await box.create_activity("Later")
        box.stage(later.local_id, ride(0, 5))
        await box.commit()
        await up.run_until_drained()
        assert [a.title for a in emu.activities] == ["Later"]
        await box.close()


async def refused_live(
    box: Outbox, up: Uplink, client: object, title: str, rec: ActivityRecord | None = None
) -> int:
    """A ride the server refuses live (closed behind our back), stopped: its GPX is due."""
    rec = rec or await box.create_activity(title)
    box.stage(rec.local_id, ride(0, 10))
    await box.commit()
    await up.step()
    remote_id = box.record(rec.local_id).activity.remote_id
    assert remote_id is not None
    await client.stop_activity(remote_id)  # type: ignore[attr-defined]
    box.stage(rec.local_id, ride(10, 20))
    await box.commit()
    for _ in range(3):  # three permanent refusals in a row: live streaming is given up
        await up.step()
    assert box.record(rec.local_id).activity.upload_only
    await stop(box, rec.local_id)
    return rec.local_id


async def test_a_ride_whose_gpx_is_refused_does_not_hold_back_the_next(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        refused = await refused_live(box, up, client, "Too big for the front end")
        emu.set_faults(max_body=2000)  # the GPX (30 points) is over it; a 10-point update not
        nxt = await box.create_activity("Next ride")
        box.stage(nxt.local_id, ride(100, 9))
        await box.commit()
        await stop(box, nxt.local_id)
        await up.run_until_drained()
        rec = box.record(refused)
        assert rec.activity.state is ActivityState.REJECTED
        assert len(await box.all_points(refused)) == 30  # kept on disk for `tracker export`
        upload = emu.request_counts().get("uploadActivity", {})
        assert upload == {"too_large": 1}  # refused once, not retried
        live = [a for a in emu.activities if a.title == "Next ride"]
        assert len(live) == 1
        assert live[0].state == "stopped"
        assert len(live[0].points) == 9
        await box.close()


async def test_a_lost_gpx_reply_is_not_sent_again(tmp_path: Path) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        local_id = await refused_live(box, up, client, "Reply lost")
        emu.set_faults(lost_reply_rate=1.0)
        for _ in range(10):
            await up.step()
        emu.set_faults(lost_reply_rate=0.0)
        await up.run_until_drained()
        assert box.record(local_id).activity.state is ActivityState.UNCONFIRMED
        uploaded = [a for a in emu.activities if a.state == "uploaded"]
        assert len(uploaded) == 1  # the one upload that was applied; no second copy
        # One request: applied ("ok" on the server's side), its reply lost; none after it.
        assert emu.request_counts()["uploadActivity"] == {"ok": 1, "lost_reply": 1}
        await box.close()


async def test_offline_ride_with_lost_replies_on_every_endpoint_appears_once(
    tmp_path: Path,
) -> None:
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        emu.set_faults(down=True)
        rec = await box.create_activity("Tunnel ride")
        box.stage(rec.local_id, ride(0, 60))
        await box.commit()
        for _ in range(5):
            await up.step()
        await stop(box, rec.local_id)
        emu.set_faults(down=False)

        async def lose_replies(steps: int) -> None:
            emu.set_faults(lost_reply_rate=1.0)
            for _ in range(steps):  # applied by the server, never answered
                await up.step()
            emu.set_faults(lost_reply_rate=0.0)

        await lose_replies(3)  # startActivity x3
        await up.step()
        await lose_replies(3)  # updateActivity x3 (the same batch)
        while box.pending_count(rec.local_id) > 0:
            await up.step()
        await lose_replies(3)  # stopActivity x3
        await up.run_until_drained()
        (remote,) = emu.activities
        assert remote.state == "stopped"
        assert [p.timestamp for p in remote.points] == list(range(T0, T0 + 60))
        counts = emu.request_counts()
        assert "uploadActivity" not in counts
        for endpoint in ("startActivity", "updateActivity", "stopActivity"):
            assert counts[endpoint].get("lost_reply", 0) >= 1, (endpoint, counts)
        assert box.record(rec.local_id).activity.state is ActivityState.STOPPED
        await box.close()


async def test_a_ride_that_goes_up_as_gpx_keeps_its_heart_rate(tmp_path: Path) -> None:
    """Issue 16: the GPX fallback used to drop heart rate; now each point carries its sample
    (gpxtpx:hr) and the server reads them back from the file."""
    sleep = FakeSleep()
    async with emulator_and_client(tmp_path) as (emu, client):
        box, up = await outbox_and_uplink(tmp_path, client, sleep)
        rec = await box.create_activity("Strap on, refused live")
        box.stage(rec.local_id, hr=[HeartRateSample(T0 + s, 120 + s) for s in range(30)])
        local_id = await refused_live(box, up, client, "unused", rec=rec)
        await up.run_until_drained()
        assert box.record(local_id).activity.state is ActivityState.UPLOADED
        (uploaded,) = [a for a in emu.activities if a.state == "uploaded"]
        assert len(uploaded.points) == 30
        assert [(s.timestamp, s.hr) for s in uploaded.hr] == [
            (T0 + s, 120 + s) for s in range(30)
        ]
        await box.close()
