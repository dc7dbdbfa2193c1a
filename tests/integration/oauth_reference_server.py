"""A second-opinion OAuth 2 server for the client tests: oauthlib's ``WebApplicationServer``.

The project's emulator uses authlib on the server side, and so does our client: a bug shared by
the two (a parameter name, an auth method, a rotation detail) could hide. This server is built
on a different library, oauthlib, with an in-memory ``RequestValidator``, served by a real
aiohttp server on loopback. It enforces what the v3 contract asks: a confidential client with
HTTP Basic auth, single-use codes bound to their redirect URI, rotated refresh tokens (the old one
dies when used), RFC 7009 revocation, and Bearer-protected resource endpoints that answer like
v3 (records the multipart fields they got, so tests can check the payload).

Faults for the classification tests: ``script`` is a list of actions for the next requests
under /api3/ (``"500"``, ``"503"``, ``"429"``, ``"drop"`` = close with no reply before applying,
``"lost"`` = apply, then close with no reply).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from oauthlib.oauth2 import RequestValidator, WebApplicationServer

CLIENT_ID = "second-opinion-client"
CLIENT_SECRET = "second-opinion-secret-0123456789"


@dataclass
class Grant:
    user: str
    scopes: list[str]
    access_tokens: set[str] = field(default_factory=set)


class MemoryValidator(RequestValidator):  # type: ignore[misc]
    """Everything oauthlib asks, kept in dicts."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.codes: dict[str, dict[str, Any]] = {}
        self.used_codes: set[str] = set()
        self.refresh: dict[str, Grant] = {}
        self.dead_refresh: set[str] = set()
        self.access: dict[str, tuple[float, Grant]] = {}

    # client authentication (confidential client, HTTP Basic)
    def client_authentication_required(self, request: Any, *a: Any, **k: Any) -> bool:
        return True

    def authenticate_client(self, request: Any, *a: Any, **k: Any) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if user != CLIENT_ID or not secrets.compare_digest(password, CLIENT_SECRET):
            return False
        request.client = type("Client", (), {"client_id": CLIENT_ID})()
        request.client_id = CLIENT_ID
        return True

    def authenticate_client_id(self, client_id: str, request: Any, *a: Any, **k: Any) -> bool:
        return False

    # authorization
    def validate_client_id(self, client_id: str, request: Any, *a: Any, **k: Any) -> bool:
        return bool(client_id == CLIENT_ID)

    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any,
                              *a: Any, **k: Any) -> bool:  # fmt: skip
        return redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:"))

    def get_default_redirect_uri(self, client_id: str, request: Any, *a: Any, **k: Any) -> None:
        return None

    def validate_response_type(self, client_id: str, response_type: str, client: Any,
                               request: Any, *a: Any, **k: Any) -> bool:  # fmt: skip
        return response_type == "code"

    def validate_scopes(self, client_id: str, scopes: Any, client: Any, request: Any,
                        *a: Any, **k: Any) -> bool:  # fmt: skip
        return True

    def get_default_scopes(self, client_id: str, request: Any, *a: Any, **k: Any) -> list[str]:
        return ["activities"]

    def save_authorization_code(self, client_id: str, code: dict[str, str], request: Any,
                                *a: Any, **k: Any) -> None:  # fmt: skip
        self.codes[code["code"]] = {
            "redirect_uri": request.redirect_uri,
            "scopes": list(request.scopes),
            "user": request.user,
        }

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        return False

    def get_code_challenge(self, code: str, request: Any) -> None:
        return None

    # token endpoint
    def validate_code(self, client_id: str, code: str, client: Any, request: Any,
                      *a: Any, **k: Any) -> bool:  # fmt: skip
        entry = self.codes.get(code)
        if entry is None:
            return False
        request.user = entry["user"]
        request.scopes = entry["scopes"]
        return True

    def confirm_redirect_uri(self, client_id: str, code: str, redirect_uri: str, client: Any,
                             request: Any, *a: Any, **k: Any) -> bool:  # fmt: skip
        entry = self.codes.get(code)
        return entry is not None and entry["redirect_uri"] == redirect_uri

    def validate_grant_type(self, client_id: str, grant_type: str, client: Any, request: Any,
                            *a: Any, **k: Any) -> bool:  # fmt: skip
        return grant_type in ("authorization_code", "refresh_token")

    def invalidate_authorization_code(self, client_id: str, code: str, request: Any,
                                      *a: Any, **k: Any) -> None:  # fmt: skip
        self.codes.pop(code, None)
        self.used_codes.add(code)

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any,
                               *a: Any, **k: Any) -> bool:  # fmt: skip
        grant = self.refresh.get(refresh_token)
        if grant is None:
            return False
        request.user = grant.user
        return True

    def get_original_scopes(self, refresh_token: str, request: Any, *a: Any,
                            **k: Any) -> list[str]:  # fmt: skip
        return self.refresh[refresh_token].scopes

    def rotate_refresh_token(self, request: Any) -> bool:
        return True

    def save_bearer_token(self, token: dict[str, Any], request: Any, *a: Any, **k: Any) -> None:
        if request.grant_type == "refresh_token":
            grant = self.refresh.pop(request.refresh_token)  # rotation: the old one dies now
            self.dead_refresh.add(request.refresh_token)
        else:
            grant = Grant(user=request.user, scopes=list(request.scopes or ["activities"]))
        grant.access_tokens.add(token["access_token"])
        self.access[token["access_token"]] = (self.now() + token["expires_in"], grant)
        if "refresh_token" in token:
            self.refresh[token["refresh_token"]] = grant

    # resources
    def validate_bearer_token(self, token: str, scopes: Any, request: Any) -> bool:
        entry = self.access.get(token)
        return entry is not None and entry[0] > self.now()

    # revocation (RFC 7009): a refresh token takes its access tokens with it
    def revoke_token(self, token: str, token_type_hint: str | None, request: Any,
                     *a: Any, **k: Any) -> None:  # fmt: skip
        grant = self.refresh.pop(token, None)
        if grant is not None:
            self.dead_refresh.add(token)
            for access in grant.access_tokens:
                self.access.pop(access, None)
        else:
            self.access.pop(token, None)


class ReferenceServer:
    """The aiohttp app around the oauthlib server; ``base_url`` ends in ``/api3``."""

    def __init__(self, *, token_ttl: int = 3600) -> None:
        self.clock_offset = 0.0
        self.validator = MemoryValidator(self.now)
        self.oauth = WebApplicationServer(self.validator, token_expires_in=token_ttl)
        self.script: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []  # (function, multipart fields)
        self.token_requests: list[dict[str, str]] = []
        self.authorize_queries: list[dict[str, str]] = []
        self._ids = itertools.count(1000)
        self.base_url = ""

    def now(self) -> float:
        return time.time() + self.clock_offset

    def expire_access_tokens(self) -> None:
        for token, (_, grant) in list(self.validator.access.items()):
            self.validator.access[token] = (0.0, grant)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_get("/api3/oauth/authorize", self.authorize)
        app.router.add_post("/api3/oauth/token", self.token)
        app.router.add_post("/api3/oauth/revoke", self.revoke)
        for function in ("startActivity", "updateActivity", "stopActivity", "uploadActivity"):
            app.router.add_post(f"/api3/{function}", self.resource)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        action = self.script.pop(0) if self.script else ""
        if action.isdigit():
            return web.json_response({"error": "injected"}, status=int(action),
                                     headers={"Retry-After": "7"})  # fmt: skip
        if action == "drop":
            _close(request)
        response: web.StreamResponse = await handler(request)
        if action == "lost":
            _close(request)
        return response

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items()}

    async def authorize(self, request: web.Request) -> web.Response:
        """Auto-approves, like the emulator's ``--auto-approve``."""
        uri = str(request.url)
        self.authorize_queries.append(dict(request.query))
        scopes, credentials = self.oauth.validate_authorization_request(uri, "GET", "", {})
        credentials["user"] = "rider"
        headers, body, status = self.oauth.create_authorization_response(
            uri, "GET", "", {}, scopes, credentials
        )
        return web.Response(status=status, headers=headers, text=body or "")

    async def token(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.token_requests.append(dict((await request.post()).items()))  # type: ignore[misc]
        headers, text, status = self.oauth.create_token_response(
            str(request.url), "POST", body, self._headers(request)
        )
        return web.Response(status=status, headers=headers, text=text)

    async def revoke(self, request: web.Request) -> web.Response:
        body = await request.text()
        headers, text, status = self.oauth.create_revocation_response(
            str(request.url), "POST", body, self._headers(request)
        )
        return web.Response(status=status, headers=headers, text=text or "")

    async def resource(self, request: web.Request) -> web.Response:
        function = request.path.rsplit("/", 1)[-1]
        auth = {"Authorization": request.headers.get("Authorization", "")}
        valid, _ = self.oauth.verify_request(str(request.url), "POST", "", auth,
                                             scopes=["activities"])  # fmt: skip
        if not valid:
            return web.json_response({"error": "invalid_token"}, status=401)
        fields: dict[str, str] = {}
        async for part in await request.multipart():  # type: ignore[union-attr]
            value = await part.read()  # type: ignore[union-attr]
            fields[str(part.name)] = value.decode("utf-8")
        self.requests.append((function, fields))
        if function in ("startActivity", "uploadActivity"):
            return web.json_response({"function": function, "activity_id": next(self._ids)})
        return web.json_response({"function": function, "ok": 1})


def _close(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()
    raise ConnectionResetError("closed on purpose")


@contextlib.asynccontextmanager
async def running_reference_server(*, token_ttl: int = 3600) -> AsyncIterator[ReferenceServer]:
    server = ReferenceServer(token_ttl=token_ttl)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}/api3"
    try:
        yield server
    finally:
        await runner.cleanup()
