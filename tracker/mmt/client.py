"""The Map My Tracks API v3 client: start, update, stop and upload activities.

One :class:`aiohttp.ClientSession` (keep-alive: a ride makes a request every few seconds over a
phone hotspot, and a new TLS handshake each time costs more than the request), explicit timeouts,
multipart form bodies as the v3 docs' ``curl -F`` examples, and the compact JSON ``data`` field
the contract (docs in ``../shared/api/mmt-api-v3.md``) fixes: whole-second ``timestamp`` equal to
``unix_timestamp``, 6-decimal coordinates, 1-decimal elevation, ``hr`` top-level and omitted when
empty.

Every failure is one of our error types, classified for the uplink's retry policy:

* :class:`RetryableApiError`: timeouts, connection errors (a server that closes with no reply
  included), 5xx, 429 (``retry_after`` from Retry-After), a 200 that is not the API's JSON;
* :class:`LoginNeededError`: no tokens, or the refresh token was refused (``invalid_grant``);
  ``client.login_needed`` stays true until a `tracker login` (picked up without a restart);
* :class:`AuthError`: a 401 that survives one refresh-and-retry;
* :class:`PermanentApiError`: 403 and other 4xx, with the server's message.

Retries are the caller's business (the uplink's declared policy); this client never retries
except the single refresh-and-retry on 401, which is part of OAuth, not of the retry policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final

import aiohttp

from tracker.config import ApiSettings
from tracker.errors import LoginNeededError, RetryableApiError
from tracker.logs import get_logger
from tracker.mmt.expiry import DEFAULT_LEEWAY_S, WallClock, system_clock
from tracker.mmt.http import FilePart, FormField, Reply, check_base_url, multipart
from tracker.mmt.keeper import TokenKeeper
from tracker.mmt.tokens import TokenStore
from tracker.model import HeartRateSample, Point

USER_AGENT: Final = "tracker/0.1 (+Raspberry Pi live tracker; aiohttp)"



log = get_logger("api")


# -- the payload -------------------------------------------------------------------------------


def encode_data(points: Sequence[Point], hr: Sequence[HeartRateSample] = ()) -> str:
    """The ``data`` field: compact JSON, per the contract's decisions."""
    loc: list[dict[str, object]] = []
    for p in points:
        second = int(p.timestamp)
        item: dict[str, object] = {"lat": round(p.lat, 6), "lon": round(p.lon, 6)}
        if p.ele is not None:
            item["ele"] = round(p.ele, 1)
        item["timestamp"] = second
        item["unix_timestamp"] = second
        loc.append(item)
    body: dict[str, object] = {"loc": loc}
    if hr:
        body["hr"] = [
            {"hr": int(s.hr), "timestamp": int(s.timestamp), "unix_timestamp": int(s.timestamp)}
            for s in hr
        ]
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


# -- the client --------------------------------------------------------------------------------


class MapMyTracksClient:
    """Async client for the four activity calls. Use as ``async with``.

    ``session`` lets a caller share its own ClientSession (it is then not closed here).
    ``clock`` is the trusted wall clock stamped into the token file for `tracker status` (the
    engine passes GPS time); it never decides a refresh. ``monotonic`` exists for tests.
    """

    def __init__(
        self,
        settings: ApiSettings,
        token_store: TokenStore,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: WallClock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
        leeway_s: float = DEFAULT_LEEWAY_S,
    ) -> None:
        check_base_url(settings.base_url)  # ConfigError before anything else
        self.settings = settings
        self.token_store = token_store
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._monotonic = monotonic
        self._leeway_s = leeway_s
        self._oauth: TokenKeeper | None = None
        self.timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s,
            connect=min(10.0, settings.timeout_s),
            sock_read=settings.timeout_s,
        )

    async def __aenter__(self) -> MapMyTracksClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=60),
                headers={"User-Agent": USER_AGENT},
            )
        try:
            self._oauth = TokenKeeper(
                self._session,
                base_url=self.settings.base_url,
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret,
                store=self.token_store,
                timeout=self.timeout,
                token_timeout_s=self.settings.timeout_s,
                clock=self._clock,
                monotonic=self._monotonic,
                leeway=self._leeway_s,
            )
        except BaseException:
            # A missing client id/secret is found here, after the session exists: close it,
            # or aiohttp warns of an unclosed session on top of the real error.
            if self._own_session and self._session is not None:
                await self._session.close()
                self._session = None
            raise
        if not self._oauth.load_from_store_or_login_needed():
            log.warning(
                "not logged in; uploads wait for `tracker login`",
                login_state="login_needed",
                reason=self._oauth.login_needed_reason,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def oauth(self) -> TokenKeeper:
        if self._oauth is None:
            raise RuntimeError("use MapMyTracksClient as `async with` first")
        return self._oauth

    # -- state the engine shows ----------------------------------------------------------------

    @property
    def login_needed(self) -> bool:
        """True after ``invalid_grant`` or when no tokens are stored (until `tracker login`)."""
        return self.oauth.login_needed

    @property
    def login_needed_reason(self) -> str:
        return self.oauth.login_needed_reason

    def token_seconds_left(self) -> float | None:
        """Seconds until the access token expires (None: unknown, e.g. no trusted clock)."""
        return None if self.oauth.login_needed else self.oauth.seconds_left()

    # -- the calls -----------------------------------------------------------------------------

    async def start_activity(
        self,
        *,
        title: str,
        activity_type: str,
        status: str,
        tags: Sequence[str],
        points: Sequence[Point],
        hr: Sequence[HeartRateSample] = (),
    ) -> int:
        """Create (or, with the title of the live activity, resume) an activity; its id.

        A retried start after a lost reply must reuse the same ``title``: that is v3's only
        idempotency handle.
        """
        if not points:
            raise ValueError("startActivity needs at least one point")
        fields: list[FormField] = [
            ("status", status),
            ("activity_type", activity_type),
            ("activity_title", title),
            ("data", encode_data(points, hr)),
        ]
        if tags:
            fields.insert(3, ("tags", ",".join(tags)))
        body = await self._call("startActivity", fields)
        return _activity_id(body, "startActivity")

    async def update_activity(
        self, activity_id: int, points: Sequence[Point], hr: Sequence[HeartRateSample] = ()
    ) -> None:
        """Append points (and heart-rate samples) to a live activity."""
        fields: list[FormField] = [
            ("activity_id", str(int(activity_id))),
            ("data", encode_data(points, hr)),
        ]
        body = await self._call("updateActivity", fields)
        _expect_ok(body, "updateActivity")

    async def stop_activity(self, activity_id: int) -> None:
        """Close a live activity (a retried stop of a stopped activity is fine)."""
        body = await self._call("stopActivity", [("activity_id", str(int(activity_id)))])
        _expect_ok(body, "stopActivity")

    async def upload_activity(
        self, *, gpx: bytes | str, activity_type: str, status: str, title: str
    ) -> int:
        """Upload a whole ride as a GPX file (the fallback when it could not be streamed)."""
        content = gpx.encode("utf-8") if isinstance(gpx, str) else gpx
        fields: list[FormField] = [
            ("status", status),
            ("activity_type", activity_type),
            ("activity_name", title),
            FilePart("file", content, _safe_filename(title) + ".gpx", "application/gpx+xml"),
        ]
        body = await self._call("uploadActivity", fields)
        return _activity_id(body, "uploadActivity")

    async def _call(self, function: str, fields: Sequence[FormField]) -> dict[str, object]:
        reply: Reply = await self.oauth.authorized_request(
            "POST", self.oauth.endpoints.api(function), what=function, form=multipart(fields)
        )
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A 200 that is not the API's JSON: a captive portal or a proxy page, not the API.
            raise RetryableApiError(
                f"{function}: the reply is not the API's JSON (HTTP {reply.status_code})",
                status=reply.status_code,
                maybe_applied=True,  # a 200 from something in between: no telling what it did
            )
        return body


class UnconfiguredClient:
    """Stands in for MapMyTracksClient when ``[api] client_id``/``client_secret`` are not set.

    The rider can still record: points wait in the outbox, the LED shows "login needed", and
    they go out once the credentials are configured (and the service restarted). Every call
    raises LoginNeededError, which the uplink treats exactly like a refused login.
    """

    login_needed = True
    login_needed_reason = (
        "[api] client_id and client_secret are not set: register an application with "
        "Map My Tracks and put them in the config file, then restart and run `tracker login`"
    )

    async def __aenter__(self) -> UnconfiguredClient:
        log.warning("not configured; recording to the outbox only",
                       login_state="login_needed", reason=self.login_needed_reason)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def token_seconds_left(self) -> float | None:
        return None

    def _refuse(self) -> LoginNeededError:
        return LoginNeededError(self.login_needed_reason)

    async def start_activity(
        self,
        *,
        title: str,
        activity_type: str,
        status: str,
        tags: Sequence[str],
        points: Sequence[Point],
        hr: Sequence[HeartRateSample] = (),
    ) -> int:
        raise self._refuse()

    async def update_activity(
        self, activity_id: int, points: Sequence[Point], hr: Sequence[HeartRateSample] = ()
    ) -> None:
        raise self._refuse()

    async def stop_activity(self, activity_id: int) -> None:
        raise self._refuse()

    async def upload_activity(
        self, *, gpx: bytes | str, activity_type: str, status: str, title: str
    ) -> int:
        raise self._refuse()


def _activity_id(body: dict[str, object], function: str) -> int:
    value = body.get("activity_id")
    try:
        if not isinstance(value, int | float | str):
            raise TypeError
        activity_id = int(value)
    except (TypeError, ValueError):
        raise RetryableApiError(
            f"{function}: the reply has no activity_id", maybe_applied=True
        ) from None
    return activity_id


def _expect_ok(body: dict[str, object], function: str) -> None:
    if body.get("ok") not in (1, "1", True):
        raise RetryableApiError(f"{function}: the reply does not say ok", maybe_applied=True)


def _safe_filename(title: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in title).strip("_")
    return cleaned[:60] or "activity"
