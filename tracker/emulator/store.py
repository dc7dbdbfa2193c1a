"""The emulator's activities and the strict rules for what may be stored in them.

Everything here is plain data and validation, no HTTP: the server turns a
:class:`RejectedError` into the contract's 403 ``INVALID_PARAMENTER`` reply. A request is first
checked whole and only then applied, so a rejected request stores nothing.

The rules are the contract's (``shared/api/mmt-api-v3.md``): ``data`` is a JSON object with a
``loc`` list (and an optional, non-empty ``hr`` list); timestamps are JSON integers, ``timestamp``
equals ``unix_timestamp``, and they strictly increase inside one request. Against the stored
activity, a point is either newer than its last point (stored) or has exactly the timestamp of a
stored point (a retry after a lost reply: counted as a duplicate, not stored again).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

#: The activity types the contract documents (lower case). Kept here, not imported from the
#: client's config: the emulator is an independent second party.
ACTIVITY_TYPES = frozenset({
    "canoeing", "cross country skiing", "cycling", "driving", "enduro", "flying", "gliding",
    "hand cycling", "hang gliding", "hiking", "horse riding", "hot air ballooning",
    "indoor cycling", "inline skating", "jet skiing", "kayaking", "kiteboarding", "miscellaneous",
    "motor racing", "motorcycling", "mountain biking", "mountaineering", "nordic walking",
    "off road driving", "orienteering", "paragliding", "powerboating", "rowing", "running",
    "sailing", "sea kayaking", "snowshoeing", "skateboarding", "skating", "skiing",
    "snowboarding", "stand up paddle boarding", "swimming", "walking", "wheelchair",
    "windsurfing",
})  # fmt: skip
STATUSES = frozenset({"public", "private"})
#: Plausible heart rates (beats per minute); anything else is a client bug.
HR_RANGE = (20, 300)
#: Plausible UNIX seconds: 2000-01-01 .. 2100-01-01. Milliseconds or 0 are client bugs.
TIMESTAMP_RANGE = (946_684_800, 4_102_444_800)

State = Literal["live", "stopped", "uploaded"]


class RejectedError(Exception):
    """The request breaks the contract; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class StoredPoint:
    timestamp: int
    lat: float
    lon: float
    ele: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "ele": self.ele, "timestamp": self.timestamp}


@dataclass(frozen=True, slots=True)
class StoredHeartRate:
    timestamp: int
    hr: int

    def as_dict(self) -> dict[str, Any]:
        return {"hr": self.hr, "timestamp": self.timestamp}


@dataclass(frozen=True)
class Payload:
    """A checked ``data`` field: points and heart-rate samples, each strictly increasing."""

    loc: tuple[StoredPoint, ...]
    hr: tuple[StoredHeartRate, ...] = ()


@dataclass
class StoredActivity:
    """One activity of the (single) demo user, as the emulator keeps it."""

    id: int
    title: str
    activity_type: str | None
    status: str
    state: State = "live"
    tags: str = ""
    points: list[StoredPoint] = field(default_factory=list)
    hr: list[StoredHeartRate] = field(default_factory=list)
    duplicates: int = 0
    hr_duplicates: int = 0
    conflicting_duplicates: int = 0  # retried timestamps whose position differed (client bug)
    file_format: str | None = None  # gpx / tcx / fit for uploads
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    _point_index: dict[int, int] = field(default_factory=dict, repr=False)
    _hr_index: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._point_index = {p.timestamp: i for i, p in enumerate(self.points)}
        self._hr_index = {s.timestamp: i for i, s in enumerate(self.hr)}

    @property
    def last_timestamp(self) -> int | None:
        return self.points[-1].timestamp if self.points else None

    def count(self, endpoint: str, outcome: str) -> None:
        self.requests[(endpoint, outcome)] += 1

    def check_append(self, payload: Payload) -> None:
        """Raise :class:`RejectedError` unless every point is new or an exact-timestamp retry."""
        _check_against(
            [p.timestamp for p in payload.loc], self._point_index,
            self.points[-1].timestamp if self.points else None, "loc",
        )
        _check_against(
            [s.timestamp for s in payload.hr], self._hr_index,
            self.hr[-1].timestamp if self.hr else None, "hr",
        )

    def append(self, payload: Payload) -> tuple[int, int]:
        """Store the new points (call :meth:`check_append` first). Returns (stored, duplicates)."""
        stored = duplicates = 0
        for point in payload.loc:
            index = self._point_index.get(point.timestamp)
            if index is not None:
                duplicates += 1
                if self.points[index] != point:
                    self.conflicting_duplicates += 1
                continue
            self._point_index[point.timestamp] = len(self.points)
            self.points.append(point)
            stored += 1
        for sample in payload.hr:
            if sample.timestamp in self._hr_index:
                self.hr_duplicates += 1
                continue
            self._hr_index[sample.timestamp] = len(self.hr)
            self.hr.append(sample)
        self.duplicates += duplicates
        return stored, duplicates

    def as_dict(self) -> dict[str, Any]:
        """The inspection JSON of this activity (``GET /_emulator/activities``)."""
        requests: dict[str, dict[str, int]] = {}
        for (endpoint, outcome), n in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[outcome] = n
        return {
            "id": self.id,
            "title": self.title,
            "activity_type": self.activity_type,
            "status": self.status,
            "state": self.state,
            "tags": self.tags,
            "points": [p.as_dict() for p in self.points],
            "hr": [s.as_dict() for s in self.hr],
            "duplicates": self.duplicates,
            "hr_duplicates": self.hr_duplicates,
            "conflicting_duplicates": self.conflicting_duplicates,
            "file_format": self.file_format,
            "requests": requests,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoredActivity:
        """Rebuild from :meth:`as_dict` output (the state file)."""
        requests: Counter[tuple[str, str]] = Counter()
        for endpoint, outcomes in raw.get("requests", {}).items():
            for outcome, n in outcomes.items():
                requests[(endpoint, outcome)] = int(n)
        return cls(
            id=int(raw["id"]),
            title=str(raw["title"]),
            activity_type=raw.get("activity_type"),
            status=str(raw["status"]),
            state=raw["state"],
            tags=str(raw.get("tags", "")),
            points=[StoredPoint(int(p["timestamp"]), float(p["lat"]), float(p["lon"]),
                                None if p.get("ele") is None else float(p["ele"]))
                    for p in raw.get("points", [])],
            hr=[StoredHeartRate(int(s["timestamp"]), int(s["hr"])) for s in raw.get("hr", [])],
            duplicates=int(raw.get("duplicates", 0)),
            hr_duplicates=int(raw.get("hr_duplicates", 0)),
            conflicting_duplicates=int(raw.get("conflicting_duplicates", 0)),
            file_format=raw.get("file_format"),
            requests=requests,
        )


def _check_against(
    timestamps: list[int], index: dict[int, int], last: int | None, what: str
) -> None:
    for ts in timestamps:
        if last is not None and ts <= last and ts not in index:
            raise RejectedError(
                f"{what} timestamp {ts} is not after the activity's last stored timestamp "
                f"{last} and is not a retry of a stored one"
            )


class ActivityStore:
    """All activities, by id and by title; ids start high like the real service's."""

    FIRST_ID = 1_000_001

    def __init__(self) -> None:
        self.activities: dict[int, StoredActivity] = {}
        self._next_id = self.FIRST_ID

    def new_id(self) -> int:
        activity_id = self._next_id
        self._next_id += 1
        return activity_id

    def add(self, activity: StoredActivity) -> StoredActivity:
        self.activities[activity.id] = activity
        self._next_id = max(self._next_id, activity.id + 1)
        return activity

    def by_title(self, title: str) -> StoredActivity | None:
        if not title:
            return None
        for activity in self.activities.values():
            if activity.title == title:
                return activity
        return None

    def get(self, activity_id: int) -> StoredActivity | None:
        return self.activities.get(activity_id)

    def as_list(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.activities.values()]

    def to_json(self) -> dict[str, Any]:
        return {"next_id": self._next_id, "activities": self.as_list()}

    def load_json(self, raw: dict[str, Any]) -> None:
        self.activities = {}
        for item in raw.get("activities", []):
            self.add(StoredActivity.from_dict(item))
        self._next_id = max(self._next_id, int(raw.get("next_id", self.FIRST_ID)))


# ---------------------------------------------------------------------------------------------
# Field validation


def parse_status(value: str | None) -> str:
    if value is None or value == "":
        raise RejectedError("status is required (public or private)")
    if value not in STATUSES:
        raise RejectedError(f"status must be public or private, got {value!r}")
    return value


def parse_activity_type(value: str | None, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise RejectedError("activity_type is required")
        return None
    if value not in ACTIVITY_TYPES:
        raise RejectedError(
            f"activity_type {value!r} is not one of the documented types (lower case)"
        )
    return value


def parse_activity_id(value: str | None) -> int:
    if value is None or value == "":
        raise RejectedError("activity_id is required")
    if not value.isdigit():
        raise RejectedError(f"activity_id must be a whole number, got {value!r}")
    return int(value)


def parse_payload(raw: str | None) -> Payload:
    """Check the ``data`` field: ``loc`` is required and non-empty in a start and an update
    alike (heart rate rides with points; the contract refuses ``"loc": []``)."""
    if raw is None or raw == "":
        raise RejectedError("data is required")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RejectedError(f"data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RejectedError("data must be a JSON object with a loc list")
    if "loc" not in data:
        raise RejectedError("data.loc is required")
    loc_raw = data["loc"]
    if not isinstance(loc_raw, list):
        raise RejectedError("data.loc must be a list of points")
    hr_raw = data.get("hr")
    if "hr" in data:
        if not isinstance(hr_raw, list):
            raise RejectedError("data.hr must be a list of heart-rate samples")
        if not hr_raw:
            raise RejectedError("data.hr must be omitted when there are no samples, not empty")
    loc = tuple(_parse_point(i, item) for i, item in enumerate(loc_raw))
    hr = tuple(_parse_hr(i, item) for i, item in enumerate(hr_raw or []))
    if not loc:
        raise RejectedError("data.loc must hold at least one point")
    _check_increasing([p.timestamp for p in loc], "loc")
    _check_increasing([s.timestamp for s in hr], "hr")
    return Payload(loc=loc, hr=hr)


def _check_increasing(timestamps: list[int], what: str) -> None:
    for i in range(1, len(timestamps)):
        if timestamps[i] <= timestamps[i - 1]:
            raise RejectedError(
                f"data.{what}[{i}] timestamp {timestamps[i]} is not after the previous one "
                f"({timestamps[i - 1]}): timestamps must strictly increase"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_timestamp(where: str, item: dict[str, Any]) -> int:
    for key in ("timestamp", "unix_timestamp"):
        if key not in item:
            raise RejectedError(f"{where}.{key} is required")
        value = item[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise RejectedError(
                f"{where}.{key} must be a whole UTC second (a JSON integer), got {value!r}"
            )
    ts, unix = item["timestamp"], item["unix_timestamp"]
    if ts != unix:
        raise RejectedError(f"{where}: timestamp {ts} and unix_timestamp {unix} differ")
    if not TIMESTAMP_RANGE[0] <= ts < TIMESTAMP_RANGE[1]:
        raise RejectedError(f"{where}.timestamp {ts} is not a plausible UNIX time in seconds")
    return int(ts)


def _parse_point(i: int, item: Any) -> StoredPoint:
    where = f"data.loc[{i}]"
    if not isinstance(item, dict):
        raise RejectedError(f"{where} must be an object with lat, lon, timestamp")
    for key, limit in (("lat", 90.0), ("lon", 180.0)):
        if key not in item:
            raise RejectedError(f"{where}.{key} is required")
        if not _is_number(item[key]):
            raise RejectedError(f"{where}.{key} must be a number, got {item[key]!r}")
        if not -limit <= item[key] <= limit:
            raise RejectedError(f"{where}.{key} {item[key]} is out of range ±{limit:g}")
    ele = item.get("ele")
    if ele is not None and not _is_number(ele):
        raise RejectedError(f"{where}.ele must be a number in metres, got {ele!r}")
    ts = _parse_timestamp(where, item)
    return StoredPoint(
        timestamp=ts, lat=float(item["lat"]), lon=float(item["lon"]),
        ele=None if ele is None else float(ele),
    )


def _parse_hr(i: int, item: Any) -> StoredHeartRate:
    where = f"data.hr[{i}]"
    if not isinstance(item, dict):
        raise RejectedError(f"{where} must be an object with hr and timestamp")
    if "hr" not in item:
        raise RejectedError(f"{where}.hr is required")
    value = item["hr"]
    if not isinstance(value, int) or isinstance(value, bool):
        raise RejectedError(f"{where}.hr must be whole beats per minute, got {value!r}")
    if not HR_RANGE[0] <= value <= HR_RANGE[1]:
        raise RejectedError(f"{where}.hr {value} is out of range {HR_RANGE[0]}..{HR_RANGE[1]}")
    return StoredHeartRate(timestamp=_parse_timestamp(where, item), hr=value)
