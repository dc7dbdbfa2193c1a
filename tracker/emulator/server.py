"""The emulator's aiohttp app: the v3 API under ``/api3/``, inspection under ``/_emulator/``.

One :class:`Emulator` owns the state (activities, OAuth storage, fault dice, request counts) and
builds the ``web.Application``. Faults are a middleware that sees every ``/api3/`` request
(OAuth included) and never a ``/_emulator/`` one. "No reply" faults really close the TCP
connection, so a client sees ``ServerDisconnectedError`` / ``ClientOSError``, exactly what a
dead mobile link looks like.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from authlib.oauth2.rfc6749.errors import OAuth2Error
from multidict import MultiDictProxy

from tracker.emulator.faults import Action, FaultDice, FaultError, FaultSettings
from tracker.emulator.oauth import (
    DEFAULT_TOKEN_TTL,
    DEMO_USER,
    EmulatorAuthServer,
    EmulatorRequest,
    OAuthClient,
    TokenRecord,
)
from tracker.emulator.store import (
    ActivityStore,
    RejectedError,
    StoredActivity,
    parse_activity_id,
    parse_activity_type,
    parse_payload,
    parse_status,
)
from tracker.emulator.uploads import parse_upload
from tracker.errors import TrackerError
from tracker.logs import get_logger

log = get_logger("emulator")

Sleep = Callable[[float], Awaitable[None]]
API_PREFIX = "/api3"
RESOURCE_ENDPOINTS = ("startActivity", "updateActivity", "stopActivity", "uploadActivity")
ALLOWED_FIELDS = {
    "startActivity": {"status", "activity_type", "activity_title", "tags", "data"},
    "updateActivity": {"activity_id", "data"},
    "stopActivity": {"activity_id"},
    "uploadActivity": {"status", "activity_type", "file", "activity_name", "tags"},
}
MAX_BODY = 64 * 1024 * 1024  # a long ride's GPX upload fits with room to spare


class MalformedBodyError(Exception):
    """The body says it is a form but cannot be parsed as one (bad multipart, not UTF-8)."""


async def _read_body(request: web.Request) -> MultiDictProxy[Any]:
    """``request.post()``, with a broken body turned into one clear error instead of a 500."""
    try:
        return await request.post()
    except ValueError as exc:  # includes UnicodeDecodeError and multipart framing errors
        raise MalformedBodyError(f"the form body cannot be read: {exc}") from None


def _endpoint_name(path: str) -> str:
    """``/api3/oauth/token`` → ``oauth/token``; ``/api3/startActivity`` → ``startActivity``."""
    return path[len(API_PREFIX) + 1:].rstrip("/") or "index"


class Emulator:
    """The state and behaviour of one emulator instance (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        auto_approve: bool = True,
        faults: FaultSettings | None = None,
        token_ttl: int | None = None,
        extra_redirect_uris: tuple[str, ...] = (),
        state_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.auto_approve = auto_approve
        self._base_clock = clock
        self.clock_offset = 0.0
        self.sleep = sleep
        settings = faults or FaultSettings()
        if token_ttl is not None:
            settings = settings.merged({"token_ttl": token_ttl})
        self.dice = FaultDice(settings)
        self.store = ActivityStore()
        self.auth = EmulatorAuthServer(
            OAuthClient(client_id, client_secret, tuple(extra_redirect_uris)),
            clock=self.now, token_ttl=self._token_ttl, on_signal=self._on_signal,
        )
        self.requests: Counter[tuple[str, str]] = Counter()
        self.dirty = False  # something worth saving changed since the last save
        # Which activity each in-flight request touched (by id(request)), for the lost-reply
        # counter; popped by the fault middleware when the request ends.
        self._touched: dict[int, StoredActivity] = {}
        self.state_file = Path(state_file) if state_file else None
        if self.state_file and self.state_file.exists():
            self.load_state(self.state_file)

    # -- time, faults, tokens ---------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock: the injected clock plus any test-driven advance."""
        return self._base_clock() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (tokens expire without anyone sleeping)."""
        self.clock_offset += seconds
        self.dirty = True

    def _token_ttl(self) -> int:
        return self.dice.settings.token_ttl or DEFAULT_TOKEN_TTL

    @property
    def faults(self) -> FaultSettings:
        return self.dice.settings

    def set_faults(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Merge ``changes`` into the current faults (raises FaultError on a bad one)."""
        settings = self.dice.settings.merged(changes)
        self.dice.update(settings)
        log.info("faults set", **{k: v for k, v in settings.as_dict().items() if v})
        return settings

    def _on_signal(self, name: str, **kwargs: Any) -> None:
        if name == "code_reused":
            log.warning("authorization code used twice: its tokens are revoked")

    # -- state file -------------------------------------------------------------------------------

    def state_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "activities": self.store.to_json(),
            "tokens": self.auth.tokens_json(),
            "clock_offset": self.clock_offset,
        }

    def save_state(self, path: Path | None = None) -> None:
        """Write the state file atomically (temp, fsync, rename), mode 0600: it holds tokens."""
        path = path or self.state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.state_json(), handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
            self.dirty = False
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_state(self, path: Path) -> None:
        """Load a state file written by :meth:`save_state`; a damaged one is a clear error."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.store.load_json(raw.get("activities", {}))
            self.auth.load_tokens(raw.get("tokens", []))
            self.clock_offset = float(raw.get("clock_offset", 0.0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrackerError(
                f"emulator state file {path} cannot be loaded ({type(exc).__name__}: {exc}); "
                "move it away to start empty"
            ) from exc
        log.info("state loaded", path=str(path), activities=len(self.store.activities))

    # -- the application --------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._fault_middleware], client_max_size=MAX_BODY)
        api = API_PREFIX
        app.router.add_get(f"{api}/oauth/authorize", self.authorize)
        app.router.add_post(f"{api}/oauth/authorize", self.authorize_approve)
        app.router.add_post(f"{api}/oauth/token", self.token)
        app.router.add_post(f"{api}/oauth/revoke", self.revoke)
        for name in RESOURCE_ENDPOINTS:
            app.router.add_post(f"{api}/{name}", self._resource_handler(name))
        app.router.add_get("/_emulator/", self.page)
        app.router.add_get("/_emulator", self.page)
        app.router.add_get("/_emulator/activities", self.inspect_activities)
        app.router.add_get("/_emulator/activities/{activity_id:[0-9]+}", self.inspect_activity)
        app.router.add_post("/_emulator/reset", self.post_reset)
        app.router.add_get("/_emulator/requests", self.inspect_requests)
        app.router.add_get("/_emulator/faults", self.get_faults)
        app.router.add_post("/_emulator/faults", self.post_faults)
        app.router.add_post("/_emulator/clock", self.post_clock)
        app.router.add_get("/", self.root)
        return app

    # -- faults -----------------------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        endpoint = _endpoint_name(request.path)
        settings = self.dice.settings
        if settings.down:
            await self._count_fault(request, endpoint, "down")
            return self._hang_up(request)
        if settings.max_body is not None and (request.content_length or 0) > settings.max_body:
            await self._count_fault(request, endpoint, "too_large")
            return web.json_response(
                {"function": endpoint, "error": "REQUEST_TOO_LARGE",
                 "message": f"injected fault: body over {settings.max_body} bytes, not applied"},
                status=413,
            )  # fmt: skip
        if settings.latency > 0:
            await self.sleep(settings.latency)
        action, status = self.dice.roll()
        if action is Action.ERROR:
            await self._count_fault(request, endpoint, f"error_{status}")
            return web.json_response(
                {"function": endpoint, "error": "SERVER_ERROR",
                 "message": f"injected fault: HTTP {status}, request not applied"},
                status=status,
            )
        if action is Action.DROP:
            await self._count_fault(request, endpoint, "dropped")
            return self._hang_up(request)
        try:
            response = await handler(request)
        finally:
            activity = self._touched.pop(id(request), None)
        if action is Action.LOST_REPLY:
            self.requests[(endpoint, "lost_reply")] += 1
            if activity is not None:
                activity.count(endpoint, "lost_reply")
            log.info("injected fault: request applied, reply lost", endpoint=endpoint)
            return self._hang_up(request)
        return response

    async def _count_fault(self, request: web.Request, endpoint: str, outcome: str) -> None:
        self.requests[(endpoint, outcome)] += 1
        log.info("injected fault", endpoint=endpoint, fault=outcome)
        if endpoint in RESOURCE_ENDPOINTS and request.content_type == "multipart/form-data":
            try:
                fields = await _read_body(request)
            except MalformedBodyError:
                return
            activity = self._activity_of(endpoint, fields)
            if activity is not None:
                activity.count(endpoint, outcome)

    @staticmethod
    def _hang_up(request: web.Request) -> web.StreamResponse:
        """Close the TCP connection with no reply (the response below is never sent)."""
        if request.transport is not None:
            request.transport.close()
        request.protocol.force_close()
        return web.Response(status=599)

    # -- OAuth ------------------------------------------------------------------------------------

    def _oauth_request(self, request: web.Request, fields: Mapping[str, str]) -> EmulatorRequest:
        return EmulatorRequest(request.method, str(request.url), request.headers, fields)

    async def _authorize_fields(self, request: web.Request) -> dict[str, str] | web.Response:
        repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
        if repeated:  # RFC 6749 §3.1: parameters must not be included more than once
            return _oauth_error(400, "invalid_request", f"repeated parameter {repeated[0]}")
        fields = dict(request.query)
        if request.method == "POST":
            try:
                body = await _read_body(request)
            except MalformedBodyError as exc:
                return _oauth_error(400, "invalid_request", str(exc))
            fields.update({k: v for k, v in body.items() if isinstance(v, str)})
        url, uri = fields.pop("redirect_url", None), fields.get("redirect_uri")
        if url and uri and url != uri:
            return _oauth_error(400, "invalid_request", "redirect_url and redirect_uri differ")
        if url and not uri:
            fields["redirect_uri"] = url
        if not fields.get("redirect_uri"):
            return _oauth_error(
                400, "invalid_request", "redirect_uri (or redirect_url) is required"
            )
        return fields

    async def _consent(
        self, request: web.Request
    ) -> tuple[dict[str, str], EmulatorRequest, Any] | web.StreamResponse:
        """What both authorize steps check first: the fields, authlib's request and the consent
        grant, or the error response to send instead."""
        fields = await self._authorize_fields(request)
        if isinstance(fields, web.Response):
            return fields
        oauth_request = self._oauth_request(request, fields)
        try:
            grant = self.auth.get_consent_grant(oauth_request)
        except OAuth2Error as error:
            return self._authorize_error(oauth_request, error)
        return fields, oauth_request, grant

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        """GET: validate, then redirect at once (auto-approve) or show the Approve page."""
        consent = await self._consent(request)
        if isinstance(consent, web.StreamResponse):
            return consent
        fields, oauth_request, grant = consent
        if self.auto_approve:
            self.requests[("oauth/authorize", "approved")] += 1
            return self._authorization_response(oauth_request, grant)
        self.requests[("oauth/authorize", "page")] += 1
        return web.Response(text=_approve_page(fields), content_type="text/html")

    async def authorize_approve(self, request: web.Request) -> web.StreamResponse:
        """POST from the Approve button: the same checks, then the redirect with the code."""
        consent = await self._consent(request)
        if isinstance(consent, web.StreamResponse):
            return consent
        _, oauth_request, grant = consent
        self.requests[("oauth/authorize", "approved")] += 1
        return self._authorization_response(oauth_request, grant)

    def _authorization_response(
        self, oauth_request: EmulatorRequest, grant: Any
    ) -> web.StreamResponse:
        response = self.auth.create_authorization_response(
            oauth_request, grant_user=DEMO_USER, grant=grant
        )
        assert isinstance(response, web.StreamResponse)
        return response

    def _authorize_error(self, request: EmulatorRequest, error: OAuth2Error) -> web.StreamResponse:
        self.requests[("oauth/authorize", "rejected")] += 1
        log.info("authorize rejected", error=error.error, reason=error.description)
        if error.redirect_uri:
            response = self.auth.handle_error_response(request, error)
            assert isinstance(response, web.StreamResponse)
            return response
        return _oauth_error(error.status_code or 400, error.error, error.description or "")

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return {}
        return {k: v for k, v in (await _read_body(request)).items() if isinstance(v, str)}

    async def token(self, request: web.Request) -> web.StreamResponse:
        try:
            fields = await self._form(request)
        except MalformedBodyError as exc:
            self.requests[("oauth/token:?", "error_400")] += 1
            return _oauth_error(400, "invalid_request", str(exc))
        response = self.auth.create_token_response(self._oauth_request(request, fields))
        assert isinstance(response, web.StreamResponse)
        grant_type = fields.get("grant_type", "?")
        outcome = "ok" if response.status == 200 else f"error_{response.status}"
        self.requests[(f"oauth/token:{grant_type}", outcome)] += 1
        self.dirty = True
        if response.status != 200:
            log.info("token request rejected", grant_type=grant_type, status=response.status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        try:
            fields = await self._form(request)
        except MalformedBodyError as exc:
            self.requests[("oauth/revoke", "error_400")] += 1
            return _oauth_error(400, "invalid_request", str(exc))
        response = self.auth.create_endpoint_response(
            "revocation", self._oauth_request(request, fields)
        )
        assert isinstance(response, web.StreamResponse)
        outcome = "ok" if response.status == 200 else f"error_{response.status}"
        self.requests[("oauth/revoke", outcome)] += 1
        self.dirty = True
        return response

    def _authenticate(self, request: web.Request, endpoint: str) -> TokenRecord | web.Response:
        oauth_request = self._oauth_request(request, {})
        try:
            token: TokenRecord = self.auth.resource_protector.validate_request(None, oauth_request)
        except OAuth2Error as error:
            _status, body, headers = error()
            payload = dict(body) if isinstance(body, dict) else {"error": "invalid_token"}
            payload = {"function": endpoint, **payload,
                       "message": "missing, wrong, expired or revoked access token"}
            extra = {k: v for k, v in headers if k.lower() != "content-type"}
            return web.json_response(payload, status=401, headers=extra)
        return token

    # -- resource endpoints -----------------------------------------------------------------------

    def _resource_handler(
        self, endpoint: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._resource(request, endpoint)

        handle.__name__ = endpoint
        return handle

    async def _resource(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        token = self._authenticate(request, endpoint)
        if isinstance(token, web.Response):
            self.requests[(endpoint, "unauthorized")] += 1
            log.info("request refused: bad token", endpoint=endpoint)
            return token
        activity: StoredActivity | None = None
        try:
            if request.content_type != "multipart/form-data":
                raise RejectedError(
                    f"the body must be multipart/form-data, not {request.content_type!r}"
                )
            try:
                fields = await _read_body(request)
            except MalformedBodyError as exc:
                raise RejectedError(str(exc)) from None
            activity = self._activity_of(endpoint, fields)
            unknown = sorted(set(fields) - ALLOWED_FIELDS[endpoint])
            if unknown:
                raise RejectedError(
                    f"unknown field {', '.join(unknown)} ({endpoint} takes "
                    f"{', '.join(sorted(ALLOWED_FIELDS[endpoint]))})"
                )
            reply, activity = await self._apply(endpoint, fields)
        except RejectedError as exc:
            self.requests[(endpoint, "rejected")] += 1
            if activity is not None:
                activity.count(endpoint, "rejected")
            log.info("request rejected", endpoint=endpoint, reason=str(exc))
            return web.json_response(
                {"function": endpoint, "error": "INVALID_PARAMENTER", "message": str(exc)},
                status=403,
            )
        self.requests[(endpoint, "ok")] += 1
        activity.count(endpoint, "ok")
        self.dirty = True
        self._touched[id(request)] = activity
        return web.json_response({"function": endpoint, **reply})

    def _activity_of(self, endpoint: str, fields: MultiDictProxy[Any]) -> StoredActivity | None:
        """The activity a request is about, if it names one that exists (for the counters)."""
        if endpoint == "startActivity":
            title = fields.get("activity_title")
            return self.store.by_title(title) if isinstance(title, str) else None
        raw = fields.get("activity_id")
        if isinstance(raw, str) and raw.isdigit():
            return self.store.get(int(raw))
        return None

    async def _apply(
        self, endpoint: str, fields: MultiDictProxy[Any]
    ) -> tuple[dict[str, Any], StoredActivity]:
        if endpoint == "startActivity":
            return self._start(fields)
        if endpoint == "updateActivity":
            return self._update(fields)
        if endpoint == "stopActivity":
            return self._stop(fields)
        return await self._upload(fields)

    @staticmethod
    def _text(fields: MultiDictProxy[Any], name: str) -> str | None:
        if len(fields.getall(name, [])) > 1:
            raise RejectedError(f"{name} is given more than once")
        value = fields.get(name)
        if value is None or isinstance(value, str):
            return value
        try:  # a field sent as a file part (curl -F name=@file)
            return bytes(value.file.read()).decode("utf-8")
        except (UnicodeDecodeError, AttributeError):
            raise RejectedError(f"{name} must be UTF-8 text") from None

    def _start(self, fields: MultiDictProxy[Any]) -> tuple[dict[str, Any], StoredActivity]:
        status = parse_status(self._text(fields, "status"))
        activity_type = parse_activity_type(self._text(fields, "activity_type"), required=False)
        title = self._text(fields, "activity_title") or ""
        tags = self._text(fields, "tags") or ""
        payload = parse_payload(self._text(fields, "data"))
        activity = self.store.by_title(title)
        if activity is not None:
            if activity.state != "live":
                raise RejectedError(
                    f"activity {activity.id} titled {title!r} is {activity.state}; "
                    "a new activity needs a title of its own"
                )
            activity.check_append(payload)
        else:
            activity = StoredActivity(
                id=self.store.new_id(), title=title, activity_type=activity_type,
                status=status, tags=tags,
            )
            self.store.add(activity)
        stored, duplicates = activity.append(payload)
        log.info("startActivity", activity_id=activity.id, stored=stored, duplicates=duplicates)
        return {"activity_id": activity.id}, activity

    def _live_activity(self, fields: MultiDictProxy[Any]) -> StoredActivity:
        activity_id = parse_activity_id(self._text(fields, "activity_id"))
        activity = self.store.get(activity_id)
        if activity is None:
            raise RejectedError(f"activity {activity_id} does not exist")
        return activity

    def _update(self, fields: MultiDictProxy[Any]) -> tuple[dict[str, Any], StoredActivity]:
        activity = self._live_activity(fields)
        payload = parse_payload(self._text(fields, "data"))
        if activity.state != "live":
            raise RejectedError(f"activity {activity.id} is {activity.state}, not live")
        activity.check_append(payload)
        stored, duplicates = activity.append(payload)
        log.info("updateActivity", activity_id=activity.id, stored=stored, duplicates=duplicates)
        return {"ok": 1}, activity

    def _stop(self, fields: MultiDictProxy[Any]) -> tuple[dict[str, Any], StoredActivity]:
        activity = self._live_activity(fields)
        if activity.state == "uploaded":
            raise RejectedError(f"activity {activity.id} was uploaded, not streamed live")
        activity.state = "stopped"  # a retried stop answers ok again
        log.info("stopActivity", activity_id=activity.id, points=len(activity.points))
        return {"ok": 1}, activity

    async def _upload(self, fields: MultiDictProxy[Any]) -> tuple[dict[str, Any], StoredActivity]:
        status = parse_status(self._text(fields, "status"))
        files = fields.getall("file", [])
        if not files:
            raise RejectedError("file is required (a GPX, TCX or FIT file part)")
        if len(files) > 1:
            raise RejectedError("file is given more than once")
        if isinstance(files[0], str):
            raise RejectedError("file must be a multipart file part, not a plain field")
        parsed = parse_upload(files[0].file.read())
        activity_type = parse_activity_type(
            self._text(fields, "activity_type"), required=parsed.file_format != "fit"
        )
        activity = StoredActivity(
            id=self.store.new_id(), title=self._text(fields, "activity_name") or "",
            activity_type=activity_type, status=status, state="uploaded",
            tags=self._text(fields, "tags") or "",
            points=list(parsed.points), hr=list(parsed.hr), file_format=parsed.file_format,
        )
        self.store.add(activity)
        log.info("uploadActivity", activity_id=activity.id, points=len(activity.points),
                 format=parsed.file_format)
        return {"activity_id": activity.id}, activity

    # -- inspection (never faulted) ---------------------------------------------------------------

    def requests_json(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (endpoint, outcome), n in sorted(self.requests.items()):
            out.setdefault(endpoint, {})[outcome] = n
        return out

    async def inspect_activities(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.store.as_list())

    async def inspect_activity(self, request: web.Request) -> web.StreamResponse:
        activity = self.store.get(int(request.match_info["activity_id"]))
        if activity is None:
            return web.json_response({"error": "no such activity"}, status=404)
        return web.json_response(activity.as_dict())

    def reset(self) -> None:
        """Forget every activity and request count (tokens stay valid)."""
        self.store.activities.clear()
        self.requests.clear()
        self.dirty = True

    async def post_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        log.info("emulator reset: activities and counters cleared")
        return web.json_response({"ok": 1})

    async def inspect_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.requests_json())

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.faults.as_dict())

    async def post_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            changes = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            settings = self.set_faults(changes)
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(settings.as_dict())

    async def post_clock(self, request: web.Request) -> web.StreamResponse:
        """``{"advance": seconds}``: move the emulator's clock (token expiry without waiting)."""
        try:
            body = await request.json()
            seconds = float(body["advance"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"advance": seconds}'}, status=400)
        if seconds < 0:
            return web.json_response({"error": "the clock only moves forward"}, status=400)
        self.advance_clock(seconds)
        return web.json_response({"clock_offset": self.clock_offset, "now": self.now()})

    async def page(self, request: web.Request) -> web.StreamResponse:
        from tracker.emulator.page import render_page

        active = ", ".join(
            f"{k}={v}" for k, v in self.faults.as_dict().items() if v not in (None, 0, 0.0, False)
        )
        return web.Response(
            text=render_page(list(self.store.activities.values()), active),
            content_type="text/html",
        )

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/_emulator/")


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _approve_page(fields: Mapping[str, str]) -> str:
    """The consent page: one Approve button that posts the same parameters back."""
    action = f"{API_PREFIX}/oauth/authorize?{urlencode(dict(fields))}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Authorize tracker</title></head>"
        "<body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        "<h1>Map My Tracks emulator</h1>"
        f"<p>The application <b>{escape(fields.get('client_id', ''))}</b> asks to record "
        "activities for the demo user.</p>"
        f"<form method='post' action='{escape(action)}'>"
        "<button type='submit' id='approve' style='font-size:1.3em'>Approve</button></form>"
        "</body></html>"
    )
