"""The whole service against a misbehaving emulator: 5xx, dropped connections, lost replies,
latency, a long outage, token expiry mid-ride, a revoked login and a new login. Nothing recorded
is lost; duplicate points come only from lost replies, at most one batch per lost reply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tracker.config import Settings
from tracker.emulator.runner import EmulatorHandle
from tracker.engine.service import Service
from tracker.model import Fix
from tracker.retry import RetryPolicy

from ..conftest import shared_file
from .engine_support import engine_settings, replay_ride, until
from .test_engine_service import TRACK, sed_misses, service_with

FAST_RETRY = RetryPolicy(initial_s=0.01, multiplier=2, max_s=0.05)
BATCH = 10


def lost_replies(emu: EmulatorHandle) -> int:
    return sum(c.get("lost_reply", 0) for c in emu.request_counts().values())


def fault_settings(data: Path, emu: EmulatorHandle) -> Settings:
    s = engine_settings(data, emu)
    s = s.replace("uplink", batch_interval_s=0.02, drain_interval_s=0.0, max_batch_points=BATCH)
    return s.replace("sampler", max_error_m=3.0)  # more points, more requests, more faults


def paced_ride(log: Path, gate: asyncio.Event | None = None, every: int = 20) -> AsyncIterator[Fix]:
    """The recorded ride, yielding the loop every few fixes so batches go out while riding."""

    async def fixes() -> AsyncIterator[Fix]:
        n = 0
        async for fix in replay_ride(log):
            n += 1
            if n % every == 0:
                await asyncio.sleep(0.005)
            if gate is not None and n == 1500:
                await gate.wait()
            yield fix

    return fixes()


@asynccontextmanager
async def gated_ride(
    tmp_path: Path, gate: asyncio.Event
) -> AsyncIterator[tuple[EmulatorHandle, Service]]:
    """The recorded ride, autostarted, with fast retries, held at fix 1500 until ``gate`` is
    set; yields once 1000 fixes are in and the activity exists."""
    log = shared_file(*TRACK)
    data = tmp_path / "data"

    def settings_for(emu: EmulatorHandle) -> Settings:
        return fault_settings(data, emu).replace("activity", autostart=True)

    async with service_with(
        tmp_path, settings_for, fix_stream=lambda: paced_ride(log, gate), retry_policy=FAST_RETRY
    ) as (emu, svc):
        await until(lambda: svc.counters.fixes >= 1000 and bool(emu.activities))
        yield emu, svc


async def test_random_faults_lose_nothing_and_duplicate_only_lost_batches(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    data = tmp_path / "data"

    def settings_for(emu: EmulatorHandle) -> Settings:
        emu.set_faults(error_rate=0.15, drop_rate=0.1, lost_reply_rate=0.15, latency=0.002, seed=7)
        return fault_settings(data, emu).replace("activity", autostart=True)

    async with service_with(
        tmp_path, settings_for, fix_stream=lambda: paced_ride(log), retry_policy=FAST_RETRY
    ) as (emu, svc):
        await until(lambda: bool(emu.activities) and emu.activities[0].state == "stopped", 120)
        (remote,) = emu.activities
        rec = svc.outbox.activities()[0]
        local = await svc.outbox.all_points(rec.local_id)
        assert [p.timestamp for p in remote.points] == [p.timestamp for p in local]
        assert [(p.lat, p.lon) for p in remote.points] == [(p.lat, p.lon) for p in local]
        counts = emu.request_counts()
        faults = sum(n for c in counts.values() for k, n in c.items() if k != "ok")
        assert faults >= 5, counts  # the faults really happened
        assert remote.duplicates <= lost_replies(emu) * BATCH
        assert remote.conflicting_duplicates == 0
        assert svc.uplink is not None
        assert svc.uplink.status.failures >= faults - lost_replies(emu)


async def test_long_outage_mid_ride_then_backlog_drains_in_full_batches(tmp_path: Path) -> None:
    log = shared_file(*TRACK)
    gate = asyncio.Event()
    async with gated_ride(tmp_path, gate) as (emu, svc):
        emu.set_faults(down=True)
        ok_updates = emu.request_counts().get("updateActivity", {}).get("ok", 0)
        gate.set()  # the rest of the ride happens during the outage
        await until(lambda: svc.counters.fixes >= 3000)
        assert svc.status().device_state.value == "recording_offline"
        assert svc.status().as_json()["uplink"]["link"] == "down"
        await until(lambda: svc.activities.current() is None)  # the ride ended during the outage
        # The stop staged the sampler's last points; the commit task may not have taken them
        # (or the fixes just before) yet. Commit now so the count is every point that waits.
        await svc.outbox.commit()
        assert svc.outbox.unsaved_count() == 0
        waiting = svc.outbox.pending_count()
        assert waiting > 3 * BATCH
        emu.set_faults(down=False)
        await until(lambda: emu.activities[0].state == "stopped", 60)
        (remote,) = emu.activities
        after = emu.request_counts()["updateActivity"]["ok"] - ok_updates
        # full batches, not one request per point
        assert after == -(-waiting // BATCH), (waiting, ok_updates, emu.request_counts())
        assert remote.duplicates == 0
        ref = [f async for f in paced_ride(log)]
        assert sed_misses(ref, remote.points, 3.0 + 0.2) == []


async def test_token_expiry_and_revoked_login_mid_ride(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with gated_ride(tmp_path, gate) as (emu, svc):
        emu.advance_clock(7 * 86400)  # the access token expired long ago: refreshed silently
        store = svc.client.token_store
        stored = store.load_tokens()
        await svc.client.oauth.revoke(stored["refresh_token"], "refresh_token")  # and now revoked
        emu.advance_clock(7 * 86400)
        gate.set()
        await until(lambda: svc.status().as_json()["login"]["state"] == "login_needed")
        assert svc.status().device_state.value == "login_needed"
        await until(lambda: svc.counters.fixes >= 3600)
        assert svc.outbox.pending_count() > 0  # kept, waiting for a login
        store.save(emu.issue_tokens())  # `tracker login` from another shell
        await until(lambda: emu.activities[0].state == "stopped", 60)
        (remote,) = emu.activities
        rec = svc.outbox.activities()[0]
        local = await svc.outbox.all_points(rec.local_id)
        assert [p.timestamp for p in remote.points] == [p.timestamp for p in local]
