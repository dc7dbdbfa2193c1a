"""`tracker status` and the LED say what is really happening (issue 14): a ride held by its own
backoff is not "live", and every ride not on the server has its own line."""

from __future__ import annotations

from pathlib import Path

from tracker.bike.device_state import DeviceState
from tracker.commands.status import render_service
from tracker.engine.recorder import EngineCounters, GpsView
from tracker.engine.status import LoginSection, build_status
from tracker.engine.uplink import LinkStatus
from tracker.model import Point
from tracker.ride.activity import Event
from tracker.storage.outbox import Outbox, activity_with

T0 = 1_760_000_000


async def test_held_and_refused_rides_are_shown_and_the_led_is_not_live(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "data")
    await box.open()
    old = await box.create_activity("Refused ride")
    box.stage(old.local_id, [Point(T0 + i, 45.0, 7.0) for i in range(3)])
    await box.commit()
    rec = box.record(old.local_id)
    stopped = activity_with(rec, upload_only=True).apply(Event.STOP)
    await box.update_activity(stopped.apply(Event.UPLOAD_REFUSED))
    now = await box.create_activity("Riding now")
    box.stage(now.local_id, [Point(T0 + 100, 45.0, 7.0)])
    await box.commit()
    link = LinkStatus(state="up", held={now.local_id: "RetryableApiError: HTTP 503"})
    status = build_status(
        pid=1,
        uptime_s=10.0,
        gps=GpsView(receiver_present=True, has_fix=True, fixes=5, last_fix=None),
        counters=EngineCounters(),
        outbox=box,
        link=link,
        login=LoginSection("logged_in"),
        heart_rate={"state": "disabled"},
        tasks={},
    )
    # The link answers, but the ride being recorded waits out its own backoff: not live.
    assert status.device_state is DeviceState.RECORDING_OFFLINE
    assert status.points_waiting == 1  # the refused ride's 3 points are kept, not waiting
    assert [(r.title, r.state) for r in status.rides] == [
        ("Refused ride", "rejected"),
        ("Riding now", "recording"),
    ]
    text = "\n".join(render_service({"running": True, **status.as_json()}))
    assert "other ride: Refused ride (rejected), 3 points not on the server: rejected" in text
    assert "upload: held: RetryableApiError: HTTP 503" in text
    await box.close()
