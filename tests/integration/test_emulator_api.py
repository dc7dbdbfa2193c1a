"""Resource-endpoint contract tests: a real emulator, a plain aiohttp client, every error case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tracker.emulator import EmulatorHandle, running_emulator

T0 = 1_763_809_643


def pt(ts: int, lat: float = 51.28258, lon: float = 1.080466, ele: float | None = 10.2
       ) -> dict[str, Any]:
    point: dict[str, Any] = {"lat": lat, "lon": lon, "timestamp": ts, "unix_timestamp": ts}
    if ele is not None:
        point["ele"] = ele
    return point


def data(*timestamps: int, hr: list[tuple[int, int]] | None = None) -> str:
    body: dict[str, Any] = {"loc": [pt(t, lat=51.0 + (t - T0) * 1e-4) for t in timestamps]}
    if hr:
        body["hr"] = [{"hr": v, "timestamp": t, "unix_timestamp": t} for t, v in hr]
    return json.dumps(body, separators=(",", ":"))


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator() as handle:
        yield handle


class Api:
    """A deliberately plain client: multipart form, Bearer header, JSON back."""

    def __init__(self, http: aiohttp.ClientSession, emu: EmulatorHandle) -> None:
        self.http = http
        self.emu = emu
        self.token = emu.issue_tokens()["access_token"]

    async def call(self, endpoint: str, fields: dict[str, str] | None = None, *,
                   token: str | None = None, files: dict[str, tuple[str, bytes]] | None = None
                   ) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in (fields or {}).items():
            form.add_field(name, value)
        for name, (filename, content) in (files or {}).items():
            form.add_field(name, content, filename=filename,
                           content_type="application/octet-stream")
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.http.post(f"{self.emu.base_url}/{endpoint}", data=form,
                                  headers=headers) as r:
            return r.status, await r.json()

    async def start(self, title: str = "Ride A", *timestamps: int, **extra: str
                    ) -> tuple[int, dict[str, Any]]:
        fields = {"status": "private", "activity_type": "cycling", "activity_title": title,
                  "data": data(*(timestamps or (T0,)))}
        fields.update(extra)
        return await self.call("startActivity", fields)

    async def update(self, activity_id: int, payload: str) -> tuple[int, dict[str, Any]]:
        return await self.call("updateActivity",
                               {"activity_id": str(activity_id), "data": payload})


@pytest.fixture
async def api(emu: EmulatorHandle) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, emu)


def rejected(status: int, body: dict[str, Any], function: str) -> bool:
    return status == 403 and body["error"] == "INVALID_PARAMENTER" and \
        body["function"] == function and bool(body["message"])


async def test_live_activity_round_trip(api, emu):
    status, body = await api.start("Ride A", T0, T0 + 1)
    assert status == 200
    assert body["function"] == "startActivity"
    aid = body["activity_id"]
    assert isinstance(aid, int)
    assert await api.update(aid, data(T0 + 2, T0 + 3, hr=[(T0 + 2, 120), (T0 + 3, 122)])) == \
        (200, {"function": "updateActivity", "ok": 1})
    assert await api.call("stopActivity", {"activity_id": str(aid)}) == \
        (200, {"function": "stopActivity", "ok": 1})
    [stored] = emu.snapshot()
    assert stored["id"] == aid
    assert stored["title"] == "Ride A"
    assert stored["activity_type"] == "cycling"
    assert stored["status"] == "private"
    assert stored["state"] == "stopped"
    assert [p["timestamp"] for p in stored["points"]] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert stored["points"][0] == {"lat": 51.0, "lon": 1.080466, "ele": 10.2, "timestamp": T0}
    assert stored["hr"] == [{"hr": 120, "timestamp": T0 + 2}, {"hr": 122, "timestamp": T0 + 3}]
    assert stored["duplicates"] == 0
    assert stored["requests"] == {"startActivity": {"ok": 1}, "updateActivity": {"ok": 1},
                                  "stopActivity": {"ok": 1}}
    async with api.http.get(f"{emu.root_url}/_emulator/activities") as r:
        assert await r.json() == emu.snapshot()


async def test_same_title_start_appends_to_the_live_activity(api, emu):
    _, first = await api.start("Ride A", T0)
    status, again = await api.start("Ride A", T0, T0 + 1)  # a retried start after a lost reply
    assert status == 200
    assert again["activity_id"] == first["activity_id"]
    activity = emu.activity(first["activity_id"])
    assert [p.timestamp for p in activity.points] == [T0, T0 + 1]
    assert activity.duplicates == 1
    assert len(emu.activities) == 1


async def test_every_start_without_same_title_is_a_new_activity(api, emu):
    _, a = await api.start("Ride A")
    _, b = await api.start("Ride B")
    assert a["activity_id"] != b["activity_id"]


async def test_retried_update_counts_duplicates_and_stores_once(api, emu):
    _, body = await api.start("Ride A", T0)
    aid = body["activity_id"]
    assert (await api.update(aid, data(T0 + 1, T0 + 2)))[0] == 200
    assert (await api.update(aid, data(T0 + 1, T0 + 2, T0 + 3)))[0] == 200
    activity = emu.activity(aid)
    assert [p.timestamp for p in activity.points] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert activity.duplicates == 2


async def test_stop_twice_answers_ok_again(api):
    _, body = await api.start()
    fields = {"activity_id": str(body["activity_id"])}
    assert (await api.call("stopActivity", fields))[0] == 200
    assert await api.call("stopActivity", fields) == (200, {"function": "stopActivity", "ok": 1})


@pytest.mark.parametrize(("fields", "why"), [
    ({"activity_type": "cycling", "data": data(T0)}, "status"),
    ({"status": "secret", "data": data(T0)}, "status"),
    ({"status": "private", "activity_type": "Cycling", "data": data(T0)}, "activity_type"),
    ({"status": "private", "activity_type": "unicycling", "data": data(T0)}, "activity_type"),
    ({"status": "private"}, "data is required"),
    ({"status": "private", "data": "{not json"}, "JSON"),
    ({"status": "private", "data": "[1, 2]"}, "object"),
    ({"status": "private", "data": '{"hr": []}'}, "loc"),
    ({"status": "private", "data": '{"loc": []}'}, "at least one"),
    ({"status": "private", "data": '{"loc": {}}'}, "list"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0, lat=91.0)]})}, "lat"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0, lon=-180.5)]})}, "lon"),
    ({"status": "private", "data": json.dumps({"loc": [{"lat": 1, "timestamp": T0,
                                                         "unix_timestamp": T0}]})}, "lon"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0) | {"lat": "51"}]})}, "number"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0) | {"ele": "high"}]})}, "ele"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0) | {"timestamp": T0 + 0.5,
                                                                  "unix_timestamp": T0 + 0.5}]})},
     "whole"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0) | {"unix_timestamp": T0 + 1}]})},
     "differ"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0) | {"timestamp": T0 * 1000,
                                                                  "unix_timestamp": T0 * 1000}]})},
     "plausible"),
    ({"status": "private", "data": json.dumps({"loc": [{k: v for k, v in pt(T0).items()
                                                         if k != "unix_timestamp"}]})},
     "unix_timestamp"),
    ({"status": "private", "data": data(T0 + 1, T0)}, "strictly increase"),
    ({"status": "private", "data": data(T0, T0)}, "strictly increase"),
    ({"status": "private", "data": json.dumps({"loc": [pt(T0)], "hr": []})}, "omitted"),
    ({"status": "private", "data": data(T0, hr=[(T0, 400)])}, "hr"),
    ({"status": "private", "data": data(T0, hr=[(T0 + 1, 100), (T0, 100)])}, "strictly"),
    ({"status": "private", "data": data(T0), "activity_name": "typo"}, "unknown field"),
])
async def test_start_rejections_store_nothing(api, emu, fields, why):
    status, body = await api.call("startActivity", fields)
    assert rejected(status, body, "startActivity"), (status, body)
    assert why in body["message"]
    assert emu.activities == []


async def test_update_rejections(api, emu):
    _, body = await api.start("Ride A", T0, T0 + 5)
    aid = body["activity_id"]
    cases = [
        ({"activity_id": str(aid)}, "data is required"),
        ({"data": data(T0 + 6)}, "activity_id is required"),
        ({"activity_id": "abc", "data": data(T0 + 6)}, "whole number"),
        ({"activity_id": "999", "data": data(T0 + 6)}, "does not exist"),
        ({"activity_id": str(aid), "data": data(T0 + 3)}, "not after"),  # older, not a retry
        ({"activity_id": str(aid), "data": data(T0 + 5, T0 + 4)}, "strictly"),
        ({"activity_id": str(aid), "data": data(T0 + 6, T0 + 7), "status": "public"},
         "unknown field"),
    ]
    for fields, why in cases:
        status, reply = await api.call("updateActivity", fields)
        assert rejected(status, reply, "updateActivity"), (fields, status, reply)
        assert why in reply["message"], (fields, reply)
    assert [p.timestamp for p in emu.activity(aid).points] == [T0, T0 + 5]
    # A request whose new points are fine but one point is older is rejected whole.
    status, _ = await api.update(aid, data(T0 + 2, T0 + 6))
    assert status == 403
    assert [p.timestamp for p in emu.activity(aid).points] == [T0, T0 + 5]
    assert emu.activity(aid).requests[("updateActivity", "rejected")] == 5


async def test_stopped_activity_refuses_updates_and_same_title_start(api, emu):
    _, body = await api.start("Ride A", T0)
    aid = body["activity_id"]
    await api.call("stopActivity", {"activity_id": str(aid)})
    status, reply = await api.update(aid, data(T0 + 1))
    assert rejected(status, reply, "updateActivity")
    status, reply = await api.start("Ride A", T0 + 1)
    assert rejected(status, reply, "startActivity")
    assert "title" in reply["message"]
    assert len(emu.activities) == 1


async def test_stop_unknown_activity(api):
    status, reply = await api.call("stopActivity", {"activity_id": "123"})
    assert rejected(status, reply, "stopActivity")


async def test_urlencoded_body_is_rejected(api, emu):
    async with api.http.post(f"{emu.base_url}/startActivity",
                             data={"status": "private", "data": data(T0)},
                             headers={"Authorization": f"Bearer {api.token}"}) as r:
        assert r.status == 403
        assert "multipart" in (await r.json())["message"]


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer"])
async def test_bad_token_is_401_before_validation(api, emu, header):
    headers = {"Authorization": header} if header else {}
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("status", "private")
    async with api.http.post(f"{emu.base_url}/startActivity", data=form, headers=headers) as r:
        assert r.status == 401
        body = await r.json()
    assert body["function"] == "startActivity"
    assert emu.request_counts()["startActivity"] == {"unauthorized": 1}


GPX = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
<trk><name>t</name><trkseg>
<trkpt lat="51.1" lon="1.1"><ele>5.0</ele><time>2025-11-22T10:00:00Z</time></trkpt>
<trkpt lat="51.2" lon="1.2"><ele>6.0</ele><time>2025-11-22T10:00:01.400Z</time></trkpt>
<trkpt lat="51.3" lon="1.3"><time>2025-11-22T10:00:01.900Z</time></trkpt>
<trkpt lat="51.4" lon="1.4"><time>2025-11-22T10:00:03Z</time></trkpt>
</trkseg></trk></gpx>"""

TCX = b"""<?xml version="1.0" encoding="UTF-8"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">
<Activities><Activity Sport="Biking"><Id>2025-11-22T10:00:00Z</Id>
<Lap StartTime="2025-11-22T10:00:00Z">
<Track>
<Trackpoint><Time>2025-11-22T10:00:00Z</Time><Position><LatitudeDegrees>51.1</LatitudeDegrees>
<LongitudeDegrees>1.1</LongitudeDegrees></Position><AltitudeMeters>5</AltitudeMeters>
<HeartRateBpm><Value>101</Value></HeartRateBpm></Trackpoint>
<Trackpoint><Time>2025-11-22T10:00:02Z</Time><HeartRateBpm><Value>103</Value></HeartRateBpm>
</Trackpoint>
<Trackpoint><Time>2025-11-22T10:00:04Z</Time><Position><LatitudeDegrees>51.2</LatitudeDegrees>
<LongitudeDegrees>1.2</LongitudeDegrees></Position></Trackpoint>
</Track></Lap></Activity></Activities></TrainingCenterDatabase>"""

FIT = bytes([14, 0x10, 0x52, 0x08, 0, 0, 0, 0]) + b".FIT" + b"\x00\x00" + b"\x00" * 16


async def test_upload_gpx_is_parsed_into_whole_second_points(api, emu):
    status, body = await api.call(
        "uploadActivity", {"status": "public", "activity_type": "running",
                           "activity_name": "Morning"},
        files={"file": ("ride.gpx", GPX)})
    assert status == 200
    assert body["function"] == "uploadActivity"
    activity = emu.activity(body["activity_id"])
    assert activity.state == "uploaded"
    assert activity.title == "Morning"
    assert activity.file_format == "gpx"
    t = 1763805600  # 2025-11-22T10:00:00Z
    assert [(p.timestamp, p.lat) for p in activity.points] == \
        [(t, 51.1), (t + 1, 51.2), (t + 3, 51.4)]


async def test_upload_tcx_keeps_points_and_heart_rate(api, emu):
    status, body = await api.call("uploadActivity", {"status": "private",
                                                     "activity_type": "cycling"},
                                  files={"file": ("ride.tcx", TCX)})
    assert status == 200
    activity = emu.activity(body["activity_id"])
    assert activity.file_format == "tcx"
    assert [p.lat for p in activity.points] == [51.1, 51.2]
    assert [s.hr for s in activity.hr] == [101, 103]


async def test_upload_fit_needs_no_activity_type(api, emu):
    status, body = await api.call("uploadActivity", {"status": "private"},
                                  files={"file": ("ride.fit", FIT)})
    assert status == 200
    assert emu.activity(body["activity_id"]).file_format == "fit"


@pytest.mark.parametrize(("fields", "files", "why"), [
    ({"status": "private", "activity_type": "cycling"}, None, "file is required"),
    ({"activity_type": "cycling"}, {"file": ("a.gpx", GPX)}, "status"),
    ({"status": "private"}, {"file": ("a.gpx", GPX)}, "activity_type is required"),
    ({"status": "private", "activity_type": "cycling"}, {"file": ("a.txt", b"hello")},
     "neither"),
    ({"status": "private", "activity_type": "cycling"}, {"file": ("a.gpx", b"<gpx")},
     "XML"),
    ({"status": "private", "activity_type": "cycling", "file": "not a file"}, None,
     "file part"),
])
async def test_upload_rejections(api, emu, fields, files, why):
    status, body = await api.call("uploadActivity", fields, files=files)
    assert rejected(status, body, "uploadActivity"), (status, body)
    assert why in body["message"]
    assert emu.activities == []


async def test_single_activity_inspection_and_reset(api, emu):
    _, body = await api.start("Ride A", T0)
    aid = body["activity_id"]
    async with api.http.get(f"{emu.root_url}/_emulator/activities/{aid}") as r:
        assert (await r.json())["title"] == "Ride A"
    async with api.http.get(f"{emu.root_url}/_emulator/activities/1") as r:
        assert r.status == 404
    async with api.http.get(f"{emu.root_url}/_emulator/requests") as r:
        assert (await r.json())["startActivity"] == {"ok": 1}
    async with api.http.post(f"{emu.root_url}/_emulator/reset") as r:
        assert r.status == 200
    assert emu.activities == []
    assert emu.request_counts() == {}
    # Ids keep increasing after a reset: an old id never names a new activity.
    _, again = await api.start("Ride A", T0)
    assert again["activity_id"] > aid


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", b"garbage"),
    ("multipart/form-data; boundary=xyz", b"garbage"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="data"\r\n\r\n\xff\xfe\r\n--xyz--\r\n'),
])
async def test_broken_multipart_is_a_403_not_a_crash(api, emu, content_type, body):
    async with api.http.post(f"{emu.base_url}/startActivity", data=body, headers={
            "Authorization": f"Bearer {api.token}", "Content-Type": content_type}) as r:
        assert r.status == 403
        reply = await r.json()
    assert reply["error"] == "INVALID_PARAMENTER"
    assert "form body cannot be read" in reply["message"]
    assert emu.activities == []


async def test_data_sent_as_a_file_part_is_read_too(api, emu):
    status, body = await api.call("startActivity", {"status": "private"},
                                  files={"data": ("d.json", data(T0).encode())})
    assert status == 200, body
    assert len(emu.activity(body["activity_id"]).points) == 1
