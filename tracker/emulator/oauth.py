"""The emulator's OAuth 2 authorization server, built on authlib's framework-independent core.

authlib supplies the protocol (``AuthorizationServer``, the authorization-code and refresh-token
grants, RFC 7009 revocation, RFC 6750 bearer validation); this module supplies what authlib leaves
to a framework integration: the request wrapper, the response factory, and storage for clients,
codes and tokens (in memory, optionally saved in the state file).

The emulator's rules on top of RFC 6749 (from the contract's "What the emulator adds"):

* client authentication (HTTP Basic, or ``client_secret_post``) is checked before the code, so
  a failed attempt does not burn the code (authlib's grant does it in that order);
* a code is single-use; presenting a used code again answers ``invalid_grant`` *and* revokes
  every token issued from it (RFC 6749 §4.1.2);
* refresh tokens rotate: each refresh answers a new pair and the refresh token sent is dead at
  once (``invalid_grant`` if used again);
* revoking a refresh token revokes every token of its grant; revoking an access token leaves the
  refresh token usable;
* any loopback redirect URI is accepted (``http://127.0.0.1:*``, ``http://localhost:*``), others
  only when configured.

The server is synchronous (authlib's is); the aiohttp handlers read the body first and hand the
collected fields to it. Nothing here blocks.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.resource_protector import ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint

from tracker.logs import register_secret

Clock = Callable[[], float]

DEFAULT_TOKEN_TTL = 3600  # seconds an access token lives unless token_ttl says otherwise
CODE_TTL = 600  # RFC 6749 recommends at most ten minutes
DEMO_USER = "demo"  # the emulator has one resource owner


def is_loopback_redirect(uri: str) -> bool:
    """``http://127.0.0.1:PORT/...`` or ``http://localhost:PORT/...`` (any port, any path)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass
class OAuthClient(ClientMixin):  # type: ignore[misc]
    """The registered confidential client (the tracker installation)."""

    client_id: str
    client_secret: str
    extra_redirect_uris: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the client must always say where to go back to

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""  # v3 has no scopes

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return is_loopback_redirect(redirect_uri) or redirect_uri in self.extra_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in ("client_secret_basic", "client_secret_post")
        return method in ("client_secret_basic", "client_secret_post", "anonymous_revoke")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class AuthCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    user: str
    grant_id: str
    issued_at: float
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return ""


@dataclass
class TokenRecord(TokenMixin):  # type: ignore[misc]
    """One issued pair. ``grant_id`` ties together every pair descended from one code."""

    access_token: str
    refresh_token: str
    client_id: str
    user: str
    grant_id: str
    issued_at: float
    expires_in: int
    access_revoked: bool = False
    refresh_revoked: bool = False
    clock: Clock | None = None

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return ""

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        now = self.clock() if self.clock else 0.0
        return now >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.pop("clock")
        return raw


class EmulatorRequest(OAuth2Request):  # type: ignore[misc]
    """An authlib request built from fields the aiohttp handler already read.

    The emulator serves plain HTTP by design (it is a loopback test double, possibly bound to a
    LAN address with ``--host``), so authlib's HTTPS check is satisfied with a loopback URI and
    the real URL is kept in ``uri`` afterwards.
    """

    def __init__(
        self, method: str, url: str, headers: Mapping[str, str], fields: Mapping[str, str]
    ) -> None:
        super().__init__(method, "http://127.0.0.1/", headers=dict(headers))
        self.uri = url
        self._fields = dict(fields)
        self.payload = BasicOAuth2Payload(self._fields)

    @property
    def args(self) -> dict[str, str]:
        return self._fields

    @property
    def form(self) -> dict[str, str]:
        return self._fields


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012
    server: EmulatorAuthServer

    def save_authorization_code(self, code: str, request: EmulatorRequest) -> None:
        register_secret(code)
        store = self.server
        store.codes[code] = AuthCode(
            code=code, client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri or "", user=request.user,
            grant_id=secrets.token_hex(8), issued_at=store.clock(),
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> AuthCode | None:
        record = self.server.codes.get(code)
        if record is None or record.client_id != client.client_id:
            return None
        if record.used:
            # RFC 6749 §4.1.2: a code used twice is a sign of theft; revoke what it gave.
            self.server.revoke_grant(record.grant_id)
            self.server.send_signal("code_reused", grant_id=record.grant_id)
            return None
        if self.server.clock() >= record.issued_at + CODE_TTL:
            return None
        return record

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        authorization_code.used = True  # kept, so that a reuse can be recognised

    def authenticate_user(self, authorization_code: AuthCode) -> str:
        return authorization_code.user


class RotatingRefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation: a new refresh token every time, the old one dead at once."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: EmulatorAuthServer

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        record = self.server.by_refresh.get(refresh_token)
        if record is None or record.refresh_revoked:
            return None
        return record

    def authenticate_user(self, refresh_token: TokenRecord) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        refresh_token.refresh_revoked = True


class GrantRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009 with the emulator's rule: a refresh token takes its whole grant with it.

    Client authentication is accepted by Basic, by POST fields, or absent altogether (the
    contract's "accepts either"); wrong credentials are still a 401.
    """

    CLIENT_AUTH_METHODS = [  # noqa: RUF012
        "client_secret_basic", "client_secret_post", "anonymous_revoke",
    ]
    server: EmulatorAuthServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        server = self.server
        if token_type_hint == "refresh_token":  # noqa: S105
            return server.by_refresh.get(token_string) or server.by_access.get(token_string)
        return server.by_access.get(token_string) or server.by_refresh.get(token_string)

    def revoke_token(self, token: TokenRecord, request: EmulatorRequest) -> None:
        if request.form.get("token") == token.refresh_token:
            self.server.revoke_grant(token.grant_id)
        else:
            token.access_revoked = True


class EmulatorBearerValidator(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, server: EmulatorAuthServer) -> None:
        super().__init__()
        self.server = server

    def authenticate_token(self, token_string: str) -> TokenRecord | None:
        return self.server.by_access.get(token_string)


class EmulatorAuthServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's AuthorizationServer wired to in-memory storage and aiohttp responses."""

    def __init__(
        self,
        client: OAuthClient,
        *,
        clock: Clock,
        token_ttl: Callable[[], int],
        on_signal: Callable[..., None] | None = None,
    ) -> None:
        super().__init__()
        # authlib's debug lines quote whole token dicts ("Issue token {...}"); keep them out.
        authlib_log = logging.getLogger("authlib")
        if authlib_log.level == logging.NOTSET or authlib_log.level < logging.INFO:
            authlib_log.setLevel(logging.INFO)
        register_secret(client.client_secret)
        self.client = client
        self.clock = clock
        self._token_ttl = token_ttl
        self._on_signal = on_signal
        self.codes: dict[str, AuthCode] = {}
        self.by_access: dict[str, TokenRecord] = {}
        self.by_refresh: dict[str, TokenRecord] = {}
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=lambda _client, _grant_type: self._token_ttl(),
            ),
        )
        self.register_grant(AuthorizationCodeGrant)
        self.register_grant(RotatingRefreshTokenGrant)
        self.register_endpoint(GrantRevocationEndpoint)
        self.register_client_auth_method(
            "anonymous_revoke", lambda _query, request: _anonymous_revoke(self, request)
        )
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(EmulatorBearerValidator(self))

    # -- what authlib asks a framework integration for ------------------------------------------

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self.client if client_id == self.client.client_id else None

    def save_token(self, token: dict[str, Any], request: EmulatorRequest) -> None:
        source = request.authorization_code or request.refresh_token
        self.add_token(TokenRecord(
            access_token=token["access_token"], refresh_token=token["refresh_token"],
            client_id=request.client.client_id, user=request.user, grant_id=source.grant_id,
            issued_at=self.clock(), expires_in=int(token["expires_in"]), clock=self.clock,
        ))

    def create_oauth2_request(self, request: EmulatorRequest) -> EmulatorRequest:
        return request  # handlers build it from the body they already read

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> web.Response:
        extra = {k: v for k, v in headers if k.lower() != "content-type"}
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=extra)
        return web.Response(status=status, text=str(body or ""), headers=extra)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        if self._on_signal is not None:
            self._on_signal(name, **kwargs)

    # -- storage helpers --------------------------------------------------------------------------

    def add_token(self, record: TokenRecord) -> None:
        register_secret(record.access_token)  # masked in any log line, whoever writes it
        register_secret(record.refresh_token)
        record.clock = self.clock
        self.by_access[record.access_token] = record
        self.by_refresh[record.refresh_token] = record

    def revoke_grant(self, grant_id: str) -> None:
        for record in self.by_access.values():
            if record.grant_id == grant_id:
                record.access_revoked = record.refresh_revoked = True

    def issue_tokens(self, user: str = DEMO_USER) -> dict[str, Any]:
        """A fresh grant without the browser dance (for in-process tests and the demo)."""
        token: dict[str, Any] = self.generate_token(
            "authorization_code", self.client, user=user, include_refresh_token=True
        )
        self.add_token(TokenRecord(
            access_token=token["access_token"], refresh_token=token["refresh_token"],
            client_id=self.client.client_id, user=user, grant_id=secrets.token_hex(8),
            issued_at=self.clock(), expires_in=int(token["expires_in"]),
        ))
        return token

    def tokens_json(self) -> list[dict[str, Any]]:
        return [record.to_json() for record in self.by_access.values()]

    def load_tokens(self, raw: list[dict[str, Any]]) -> None:
        for item in raw:
            self.add_token(TokenRecord(**item))


def _anonymous_revoke(server: EmulatorAuthServer, request: EmulatorRequest) -> OAuthClient | None:
    """Revocation with no client credentials at all (the contract accepts either way)."""
    if request.headers.get("Authorization") or request.form.get("client_secret"):
        return None  # credentials were given: they must be right (Basic/POST decide)
    return server.client
