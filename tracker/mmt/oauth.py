"""authlib's OAuth 2 client over aiohttp: the protocol from authlib, the transport from us.

authlib ships no aiohttp client, so :class:`AiohttpOAuth2Client` does what authlib's own httpx
integration (``authlib/integrations/httpx_client/oauth2_client.py``) does: authlib brings the
protocol (authorization URL and ``state``, the code and refresh grant bodies, client
authentication, Bearer signing, RFC 6749 §5.2 error parsing, RFC 7009 revocation bodies) and this
class brings the transport, by overriding ``_fetch_token``, ``_refresh_token`` and ``_http_post``
with coroutines. Like the httpx client it calls ``update_token`` after a refresh; here that call
is synchronous, so the caller can make the new pair durable before anything else runs.

Token replies are read up to 64 KiB (a real one is well under 2 KiB; a bigger one is refused
and nothing is stored), every token in them is registered as a secret before it is parsed, and
the refresh gets its own generous timeout: with rotating refresh tokens, a refresh whose reply
is abandoned logs the rider out.

Nothing here puts a token into a log line or an exception message. The stateful part (which
pair is current, when to refresh, the token file) is :class:`tracker.mmt.keeper.TokenKeeper`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final, Protocol

import aiohttp
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749 import OAuth2Token

from tracker.errors import AuthError, ConfigError, RetryableApiError
from tracker.logs import register_secret, scrub
from tracker.mmt import tokens as token_module
from tracker.mmt.expiry import DEFAULT_LEEWAY_S, WallClock, number, system_clock
from tracker.mmt.http import Endpoints, Reply, ReplyTooLargeError, classify_status, send

MAX_TOKEN_REPLY_BYTES: Final = 64 * 1024
# The token endpoint's reply must be waited for: a refresh abandoned after the server rotated
# leaves us a dead refresh token. At least this long, whatever [api] timeout_s says.
TOKEN_TIMEOUT_S: Final = 120.0
_TOKEN_FIELDS: Final = ("access_token", "refresh_token", "id_token")


class TokenSink(Protocol):
    """Called synchronously with a refreshed pair, before control returns to the event loop."""

    def __call__(self, token: OAuth2Token, *, refresh_token: str | None = None) -> None: ...


class ClientAuth(Protocol):
    """authlib's client authentication (Basic, here), as ``_http_post`` receives it."""

    def prepare(
        self, method: str, uri: str, headers: dict[str, str], body: str
    ) -> tuple[str, dict[str, str], str]: ...


class TokenRefusedError(AuthError):
    """The token endpoint answered with an RFC 6749 §5.2 error (``error`` holds its code)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def token_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """The token endpoint's timeout: ``timeout_s``, but never under :data:`TOKEN_TIMEOUT_S`."""
    total = max(timeout_s, TOKEN_TIMEOUT_S)
    return aiohttp.ClientTimeout(total=total, connect=min(10.0, timeout_s), sock_read=total)


class AiohttpOAuth2Client(OAuth2Client):  # type: ignore[misc]
    """authlib's OAuth2Client over one aiohttp session (the protocol only: no token file)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        clock: WallClock = system_clock,
        update_token: TokenSink | None = None,
        leeway: float = DEFAULT_LEEWAY_S,
    ) -> None:
        self.session = None  # authlib's __del__ deletes it, even when __init__ raised below
        self.endpoints = Endpoints.from_base(base_url)
        if not client_id or not client_secret:
            raise ConfigError(
                "[api] client_id and client_secret must be set (register an application with "
                "Map My Tracks, or use the ones `tracker emulator` prints)"
            )
        register_secret(client_secret)
        super().__init__(
            None,
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            revocation_endpoint_auth_method="client_secret_basic",
            redirect_uri=redirect_uri,
            token_endpoint=self.endpoints.token,
            update_token=update_token,
            leeway=int(leeway),
        )
        self.http = session
        self.timeout = timeout or token_timeout(30.0)
        self.clock = clock

    # --- the authlib transport hooks (cf. authlib's httpx AsyncOAuth2Client) ---------------

    async def _http_post(
        self,
        url: str,
        body: str | None = None,
        auth: ClientAuth | None = None,
        headers: Mapping[str, str] | None = None,
        **_kwargs: object,
    ) -> Reply:
        """POST a form to the token or revocation endpoint, signed by authlib's ClientAuth."""
        # authlib passes its module-level DEFAULT_HEADERS: copy before ClientAuth writes to it.
        sent = dict(headers or {"Content-Type": "application/x-www-form-urlencoded"})
        sent.setdefault("Accept", "application/json")
        body = body or ""
        if auth is not None:
            url, sent, body = auth.prepare("POST", url, sent, body)
        what = "the revocation endpoint" if url == self.endpoints.revoke else "the token endpoint"
        try:
            reply = await send(
                self.http, "POST", url, what=what, headers=sent, data=body.encode("utf-8"),
                timeout=self.timeout, max_bytes=MAX_TOKEN_REPLY_BYTES,
            )  # fmt: skip
        except ReplyTooLargeError:
            raise AuthError(
                f"{what} sent a reply too large to be a token (over "
                f"{MAX_TOKEN_REPLY_BYTES // 1024} KiB); nothing was stored"
            ) from None
        _register_reply_secrets(reply)
        return reply

    async def _fetch_token(
        self,
        url: str,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: ClientAuth | None = None,
        method: str = "POST",
        **_kwargs: object,
    ) -> OAuth2Token:
        """The authorization-code exchange (authlib built ``body`` and checked ``state``)."""
        reply = await self._http_post(url, body=body, auth=auth, headers=headers)
        for hook in self.compliance_hook["access_token_response"]:
            reply = hook(reply)
        return self._accept(reply)

    async def _refresh_token(
        self,
        url: str,
        refresh_token: str | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: ClientAuth | None = None,
        **_kwargs: object,
    ) -> OAuth2Token:
        reply = await self._http_post(url, body=body, auth=auth, headers=headers)
        # From here the refresh token we sent is dead at the server: the reply is the only copy
        # of its successor. Nothing awaits between this line and ``update_token``.
        token_module.checkpoint("reply_received")
        for hook in self.compliance_hook["refresh_token_response"]:
            reply = hook(reply)
        token = self._accept(reply)
        if "refresh_token" not in token and refresh_token:
            token["refresh_token"] = refresh_token  # the server did not rotate
        if self.update_token is not None:
            self.update_token(token, refresh_token=refresh_token)
        return token

    def _accept(self, reply: Reply) -> OAuth2Token:
        """Parse a token endpoint reply (authlib) and stamp its wall-clock times for display."""
        if reply.status_code >= 500 or reply.status_code == 429:
            raise classify_status(reply)
        previous = self.token
        try:
            token = self.parse_response_token(reply)  # authlib: JSON, §5.2 errors; sets .token
        except OAuth2Error as exc:
            self.token_auth.set_token(previous)
            code = scrub(str(exc.error or "unknown_error"))[:60]
            raise TokenRefusedError(
                code, f"the token endpoint refused the request ({code}, HTTP {reply.status_code})"
            ) from None
        except ValueError:
            self.token_auth.set_token(previous)
            raise RetryableApiError(
                f"the token endpoint sent a reply that is not a token (HTTP {reply.status_code})",
                status=reply.status_code,
            ) from None
        if not isinstance(token.get("access_token"), str) or not token["access_token"]:
            self.token_auth.set_token(previous)
            raise RetryableApiError("the token endpoint sent a reply without an access_token")
        expires_in = number(token.get("expires_in"))
        now = self.clock()
        token["received_at"] = now
        # authlib filled expires_at from time.time(); keep it only from a trusted clock.
        token["expires_at"] = now + expires_in if now is not None and expires_in else None
        return token

    async def revoke(self, token: str, token_type_hint: str) -> None:
        """RFC 7009 revocation (authlib builds the body; Basic client auth as the contract says)."""
        reply: Reply = await self.revoke_token(
            self.endpoints.revoke, token=token, token_type_hint=token_type_hint
        )
        if reply.status_code >= 300:
            raise classify_status(reply)


def _register_reply_secrets(reply: Reply) -> None:
    """Register every token of a token endpoint reply before anything parses or logs it."""
    try:
        body = json.loads(reply.content)
    except ValueError:
        return
    if isinstance(body, dict):
        for key in _TOKEN_FIELDS:
            value = body.get(key)
            if isinstance(value, str):
                register_secret(value)
