"""One typed status of the running service, built in one place.

:func:`build_status` reads the parts (recorder, outbox, uplink, login, supervisor) once and
returns a frozen :class:`ServiceStatus`. Everything that shows the state reads that snapshot: the
LEDs (``device_state``), the demo's status line, the control socket (``as_json()``) and
`tracker status`, which turns the socket's JSON back into the same type (``from_json``). The
JSON keys are documented in docs/engine.md; ``as_json`` is the only place that spells them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracker.bike.device_state import DeviceState, device_state
from tracker.engine.recorder import EngineCounters, GpsView
from tracker.engine.supervisor import TaskHealth
from tracker.engine.uplink import LinkStatus
from tracker.ride.activity import NOT_ON_SERVER, ActivityState
from tracker.storage.outbox import ActivityRecord, Outbox

JsonObject = dict[str, Any]  # JSON as parsed or about to be dumped: the wire format, no more

# The gps keys the engine fills in; every other gps key is the receiver's own report.
_FIX_KEYS = ("receiver_present", "has_fix", "last_fix_time", "lat", "lon", "sats", "mode", "fixes")


@dataclass(frozen=True)
class GpsSection:
    receiver_present: bool
    has_fix: bool
    fixes: int
    last_fix_time: str | None = None
    lat: float | None = None
    lon: float | None = None
    sats: int | None = None
    mode: int | None = None
    receiver: JsonObject = field(default_factory=dict)  # the stream's report, when it has one

    @classmethod
    def of(cls, gps: GpsView) -> GpsSection:
        fix = gps.last_fix
        return cls(
            receiver_present=gps.receiver_present,
            has_fix=gps.has_fix,
            fixes=gps.fixes,
            last_fix_time=fix.time.isoformat() if fix else None,
            lat=fix.lat if fix else None,
            lon=fix.lon if fix else None,
            sats=fix.sats if fix else None,
            mode=int(fix.mode) if fix else None,
            receiver={
                k: v for k, v in (gps.stream.as_dict() if gps.stream else {}).items()
                if k not in _FIX_KEYS
            },
        )

    def as_json(self) -> JsonObject:
        out: JsonObject = {**self.receiver}
        out["receiver_present"] = self.receiver_present
        out["has_fix"] = self.has_fix
        if self.last_fix_time is not None:
            out.update(last_fix_time=self.last_fix_time, lat=self.lat, lon=self.lon,
                       sats=self.sats, mode=self.mode)  # fmt: skip
        out["fixes"] = self.fixes
        return out

    @classmethod
    def from_json(cls, d: JsonObject) -> GpsSection:
        return cls(
            receiver_present=bool(d.get("receiver_present")),
            has_fix=bool(d.get("has_fix")),
            fixes=int(d.get("fixes", 0)),
            last_fix_time=d.get("last_fix_time"),
            lat=d.get("lat"),
            lon=d.get("lon"),
            sats=d.get("sats"),
            mode=d.get("mode"),
            receiver={k: v for k, v in d.items() if k not in _FIX_KEYS},
        )


@dataclass(frozen=True)
class EngineSection:
    fixes: int = 0
    fixes_recorded: int = 0
    stale_fixes_skipped: int = 0
    points_kept: int = 0
    hr_samples: int = 0

    @classmethod
    def of(cls, c: EngineCounters) -> EngineSection:
        return cls(c.fixes, c.fixes_recorded, c.stale_fixes, c.points_kept, c.hr_samples)


@dataclass(frozen=True)
class ActivitySection:
    title: str
    state: str
    remote_id: int | None
    upload_only: bool
    points_recorded: int
    points_sent: int
    points_waiting: int
    requests: int
    last_upload: str | None

    @classmethod
    def of(cls, rec: ActivityRecord, waiting: int) -> ActivitySection:
        """``waiting``: the activity's points not confirmed yet (``Outbox.waiting_count``)."""
        a = rec.activity
        return cls(
            title=a.title,
            state=a.state.value,
            remote_id=a.remote_id,
            upload_only=a.upload_only,
            points_recorded=rec.points_recorded,
            points_sent=rec.points_recorded - waiting,
            points_waiting=waiting,
            requests=rec.requests,
            last_upload=_iso(rec.last_upload_at),
        )


@dataclass(frozen=True)
class RideSection:
    """A ride that is not (or not yet) on the server, with what its upload is doing: each
    ride has its own, since none holds back another."""

    title: str
    state: str
    points_waiting: int
    upload: str  # sending | held: <error> | gpx_at_stop | rejected | unconfirmed

    @classmethod
    def of(cls, rec: ActivityRecord, waiting: int, link: LinkStatus | None) -> RideSection:
        a = rec.activity
        held = link.held.get(a.local_id) if link else None
        if a.state is ActivityState.REJECTED:
            upload = "rejected by the server; kept on disk (tracker export)"
        elif a.state is ActivityState.UNCONFIRMED:
            upload = "GPX reply lost, not resent; check the website (tracker export has it)"
        elif held is not None:
            upload = f"held: {held}"
        elif a.upload_only:
            upload = "refused live; goes up as GPX when stopped"
        else:
            upload = "sending"
        return cls(a.title, a.state.value, waiting, upload)


def _unfinished(rec: ActivityRecord) -> bool:
    """Still to go up, or finished without being on the server (a discarded ride had nothing)."""
    state = rec.activity.state
    return rec.activity.is_open or (
        state in NOT_ON_SERVER and state is not ActivityState.DISCARDED
    )


@dataclass(frozen=True)
class UplinkSection:
    link: str = "idle"
    last_success: str | None = None
    last_error: str | None = None
    requests: int = 0
    failures: int = 0
    next_retry_in_s: float | None = None
    points_sent: int = 0

    @classmethod
    def of(cls, up: LinkStatus | None) -> UplinkSection:
        if up is None:
            return cls()
        return cls(up.state, _iso(up.last_success_wall), up.last_error, up.requests,
                   up.failures, up.next_retry_in_s, up.points_sent)  # fmt: skip


@dataclass(frozen=True)
class LoginSection:
    state: str  # logged_in | login_needed (as the running client sees it)
    token_seconds_left: float | None = None


@dataclass(frozen=True)
class StorageSection:
    path: str
    error: str | None
    used_bytes: int | None  # the outbox's files on disk (database, WAL, shared memory)


@dataclass(frozen=True)
class TaskSection:
    restarts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """What `tracker status` shows and the LEDs blink, at one moment."""

    pid: int
    uptime_s: float
    device_state: DeviceState
    gps: GpsSection
    drops: dict[str, int]  # fixes dropped by the filters, by reason
    engine: EngineSection
    activity: ActivitySection | None  # the recording one, else the last open, else the last
    recording: bool
    uplink: UplinkSection
    points_waiting: int
    login: LoginSection
    storage: StorageSection
    heart_rate: JsonObject  # the strap's own report (tracker.bike.heart_rate.source)
    tasks: dict[str, TaskSection]
    rides: list[RideSection] = field(default_factory=list)  # every ride not on the server yet

    def as_json(self) -> JsonObject:
        return {
            "pid": self.pid,
            "uptime_s": self.uptime_s,
            "device_state": self.device_state.value,
            "gps": self.gps.as_json(),
            "drops": self.drops,
            "engine": vars_of(self.engine),
            "activity": vars_of(self.activity) if self.activity else None,
            "recording": self.recording,
            "uplink": vars_of(self.uplink),
            "points_waiting": self.points_waiting,
            "login": vars_of(self.login),
            "storage": vars_of(self.storage),
            "heart_rate": self.heart_rate,
            "tasks": {name: vars_of(t) for name, t in self.tasks.items()},
            "rides": [vars_of(r) for r in self.rides],
        }

    @classmethod
    def from_json(cls, d: JsonObject) -> ServiceStatus:
        """The snapshot a service sent as JSON (`tracker status` reads it this way)."""
        act = d.get("activity")
        return cls(
            pid=int(d["pid"]),
            uptime_s=float(d.get("uptime_s", 0.0)),
            device_state=DeviceState(d["device_state"]),
            gps=GpsSection.from_json(d.get("gps") or {}),
            drops=dict(d.get("drops") or {}),
            engine=EngineSection(**(d.get("engine") or {})),
            activity=ActivitySection(**act) if act else None,
            recording=bool(d.get("recording")),
            uplink=UplinkSection(**(d.get("uplink") or {})),
            points_waiting=int(d.get("points_waiting", 0)),
            login=LoginSection(**d["login"]),
            storage=StorageSection(**d["storage"]),
            heart_rate=dict(d.get("heart_rate") or {"state": "disabled"}),
            tasks={name: TaskSection(**t) for name, t in (d.get("tasks") or {}).items()},
            rides=[RideSection(**r) for r in d.get("rides") or []],
        )


def vars_of(section: object) -> JsonObject:
    """A section's fields as JSON (the field names are the keys)."""
    return dict(vars(section))


def build_status(
    *,
    pid: int,
    uptime_s: float,
    gps: GpsView,
    counters: EngineCounters,
    outbox: Outbox,
    link: LinkStatus | None,
    login: LoginSection,
    heart_rate: JsonObject,
    tasks: Mapping[str, TaskHealth],
) -> ServiceStatus:
    """The one place the status is put together from the parts."""
    current = outbox.current()
    activities = outbox.activities()
    shown = (
        current
        or next((r for r in reversed(activities) if r.activity.is_open), None)
        or (activities[-1] if activities else None)
    )
    unfinished = [r for r in activities if _unfinished(r)]
    # Points still on their way up; a refused or unconfirmed ride's points are kept, not waiting.
    waiting = sum(outbox.waiting_count(r.local_id) for r in unfinished if r.activity.is_open)
    uplink = UplinkSection.of(link)
    # The ride being recorded is live only if its own uploads go: not waiting out a backoff of
    # its own, not refused live (its points then wait for the GPX at the stop).
    stuck = current is not None and (
        current.activity.upload_only or (link is not None and current.local_id in link.held)
    )
    gps_section = GpsSection.of(gps)
    filters = gps_section.receiver.get("filters")
    failed = any(h.restarts and not h.running for h in tasks.values())
    led = device_state(
        error=outbox.storage_error is not None or failed,
        login_needed=uplink.link == "login_needed" or login.state == "login_needed",
        receiver_present=gps.receiver_present,
        has_fix=gps.has_fix,
        recording=current is not None,
        points_waiting=waiting,
        link_up=uplink.link in ("up", "idle") and not stuck,
    )
    return ServiceStatus(
        pid=pid,
        uptime_s=round(uptime_s, 1),
        device_state=led,
        gps=gps_section,
        drops=dict(filters) if isinstance(filters, dict) else {},
        engine=EngineSection.of(counters),
        activity=ActivitySection.of(shown, outbox.waiting_count(shown.local_id)) if shown else None,
        recording=current is not None,
        uplink=uplink,
        points_waiting=waiting,
        login=login,
        storage=StorageSection(str(outbox.path), outbox.storage_error, files_bytes(outbox.path)),
        heart_rate=heart_rate,
        tasks={n: TaskSection(h.restarts, h.last_error) for n, h in tasks.items()},
        rides=[RideSection.of(r, outbox.waiting_count(r.local_id), link) for r in unfinished],
    )


def files_bytes(db: Path) -> int | None:
    """Bytes the SQLite database and its -wal/-shm files take on disk; None when it has none."""
    sizes = []
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            continue
    return sum(sizes) if sizes else None


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")
