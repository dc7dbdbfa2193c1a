"""An async OAuth 2 client on aiohttp, built from authlib's ``OAuth2Client``.

authlib ships no aiohttp client, so this module does what authlib's own httpx integration
(``authlib/integrations/httpx_client/oauth2_client.py``) does: authlib brings the protocol
(authorization URL and ``state``, the code and refresh grant bodies, client authentication,
Bearer signing, RFC 6749 §5.2 error parsing, RFC 7009 revocation bodies) and we bring the
transport, by overriding ``_fetch_token``, ``_refresh_token`` and ``_http_post`` with coroutines.

On top of that, :class:`OAuthClient` keeps the token pair alive for a long-running tracker:

* **Rotation, crash-safe.** A refresh reply is written to the :class:`TokenStore` (atomic,
  fsynced) synchronously, before control returns to the event loop, so no request can use the
  new pair before it is on disk. The refresh runs under the store's inter-process lock and
  re-reads the file first, so a pair another process already rotated is adopted, not re-spent.
* **Proactive refresh** shortly before expiry, and **one refresh-and-retry on 401**.
* **A clock that may be wrong.** A Pi without an RTC can boot years off. Expiry is judged on the
  monotonic clock for pairs received in this process, and on a *trusted* wall clock (``clock``:
  GPS time from the engine, or a plausible system clock) for pairs read from disk. When neither
  can judge (no trusted time, or the stored expiry is further away than the token's lifetime,
  which only a wrong clock produces), the client does not guess: it uses the token and refreshes
  on the first 401.
* **Login needed.** ``invalid_grant`` on refresh (the pair is dead) or no tokens at all puts the
  client in the ``login_needed`` state: calls raise :class:`LoginNeededError` at once without
  touching the network, and the store is re-read on every call, so a `tracker login` made while
  the service runs is picked up without a restart.

Nothing here puts a token into a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749 import OAuth2Token

from tracker.errors import (
    ApiError,
    AuthError,
    ConfigError,
    LoginNeededError,
    PermanentApiError,
    RetryableApiError,
    StorageError,
)
from tracker.logs import get_logger, register_secret, scrub
from tracker.mmt import tokens as token_module
from tracker.mmt.tokens import TokenStore

WallClock = Callable[[], float | None]
"""Returns the current UTC time in unix seconds when it is trusted (GPS, or a plausible system
clock), else None."""

# A system clock before this instant is not plausible (a Pi without RTC boots at 1970 or at its
# last shutdown); 2025-01-01T00:00:00Z.
PLAUSIBLE_AFTER: Final = 1_735_689_600.0
# A stored expiry further ahead than the token's lifetime plus this margin means a clock was
# wrong when the pair arrived or is wrong now: expiry then is unknown (refresh on 401 only).
MAX_CLOCK_SKEW_S: Final = 300.0
DEFAULT_LEEWAY_S: Final = 60.0
LOCK_POLL_S: Final = 0.05
LOCK_TIMEOUT_S: Final = 30.0



log = get_logger("oauth")


def system_clock() -> float | None:
    """The system clock, when it is plausible (see :data:`PLAUSIBLE_AFTER`)."""
    now = time.time()
    return now if now >= PLAUSIBLE_AFTER else None


# -- endpoints and the HTTPS rule --------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; ConfigError unless HTTPS or loopback HTTP."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return base_url.rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return base_url.rstrip("/")
    raise ConfigError(
        f"[api] base_url {base_url!r}: must be https:// (plain http:// is allowed only for "
        "loopback addresses: 127.0.0.0/8, ::1, localhost)"
    )


@dataclass(frozen=True)
class Endpoints:
    """The v3 URLs under one base (``https://www.mapmytracks.com/api3``)."""

    base: str

    @classmethod
    def from_base(cls, base_url: str) -> Endpoints:
        return cls(check_base_url(base_url))

    @property
    def authorize(self) -> str:
        return f"{self.base}/oauth/authorize"

    @property
    def token(self) -> str:
        return f"{self.base}/oauth/token"

    @property
    def revoke(self) -> str:
        return f"{self.base}/oauth/revoke"

    def api(self, function: str) -> str:
        return f"{self.base}/{function}"


# -- the HTTP reply and error classification ---------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A fully read HTTP reply, with the sync surface authlib's response parsing expects."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    what: str  # "the token endpoint", "startActivity", ...

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise classify_status(self)

    def server_message(self) -> str:
        """The server's own words for an error, shortened and scrubbed."""
        try:
            body = self.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            parts = [
                str(body[k])
                for k in ("error", "message", "error_description")
                if body.get(k) not in (None, "")
            ]
            text = ": ".join(parts)
        else:
            text = self.content[:200].decode("utf-8", "replace").strip()
        return scrub(" ".join(text.split()))[:300]


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify_status(reply: Reply) -> ApiError | AuthError:
    """Our error for a non-2xx reply: retryable (5xx, 429), auth (401), permanent (other 4xx)."""
    status = reply.status_code
    message = reply.server_message()
    detail = f": {message}" if message else ""
    if status == 429:
        retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
        return RetryableApiError(
            f"{reply.what}: rate limited (HTTP 429){detail}", status=429, retry_after=retry_after
        )
    if status >= 500:
        return RetryableApiError(
            f"{reply.what}: server error (HTTP {status}){detail}",
            status=status,
            retry_after=retry_after_seconds(reply.headers.get("Retry-After")),
        )
    if status == 401:
        return AuthError(f"{reply.what}: not authorized (HTTP 401){detail}")
    if 300 <= status < 400:
        # A captive portal or a proxy, not the API: the same request may work on another network.
        return RetryableApiError(
            f"{reply.what}: unexpected redirect (HTTP {status})", status=status
        )
    return PermanentApiError(f"{reply.what}: rejected (HTTP {status}){detail}", status=status)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    data: Any,
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's per-request timeout
) -> Reply:
    """One HTTP exchange, read to the end; transport failures become RetryableApiError."""
    try:
        async with session.request(
            method, url, headers=dict(headers), data=data, timeout=timeout, allow_redirects=False
        ) as resp:
            content = await resp.read()
            return Reply(resp.status, dict(resp.headers), content, what)
    except TimeoutError:
        raise RetryableApiError(f"{what}: no reply within {timeout.total:g} s") from None
    except aiohttp.ServerDisconnectedError:
        raise RetryableApiError(
            f"{what}: the server closed the connection without a reply"
        ) from None
    except aiohttp.ClientPayloadError:
        raise RetryableApiError(f"{what}: the reply was cut off") from None
    except aiohttp.ClientConnectorError as exc:
        reason = scrub(str(exc.os_error.strerror or exc.os_error)) if exc.os_error else "failed"
        raise RetryableApiError(f"{what}: cannot connect to the server: {reason}") from None
    except aiohttp.ClientError as exc:
        raise RetryableApiError(f"{what}: connection failed ({type(exc).__name__})") from None
    except OSError as exc:
        raise RetryableApiError(f"{what}: network error: {exc.strerror or 'failed'}") from None


class TokenRefusedError(AuthError):
    """The token endpoint answered with an RFC 6749 §5.2 error (``error`` holds its code)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


# -- token lifetime ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lifetime:
    """When the current access token was received and for how long it is valid.

    ``mono_received`` is set only for a pair received by this process (a monotonic reading):
    then expiry is exact whatever the wall clock does. ``expires_at`` is on the trusted wall
    clock, None when no trusted time was known at receipt.
    """

    expires_in: float | None = None
    expires_at: float | None = None
    mono_received: float | None = None


def leeway_for(expires_in: float | None, leeway: float) -> float:
    """Refresh this many seconds before expiry: ``leeway``, but at most a quarter of the life
    (a 30 s test token must not look expired the moment it arrives)."""
    if expires_in is None:
        return leeway
    return min(leeway, expires_in / 4)


# -- the client --------------------------------------------------------------------------------


class OAuthClient(OAuth2Client):  # type: ignore[misc]
    """authlib's OAuth2Client over one aiohttp session, with a crash-safe token store.

    ``store`` may be None for a bare protocol client (the login flow exchanges the code first
    and saves the pair itself under the store's lock).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore | None = None,
        redirect_uri: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        clock: WallClock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
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
            leeway=int(leeway),
        )
        self.http = session
        self.store = store
        self.timeout = timeout or aiohttp.ClientTimeout(total=30, connect=10)
        self.clock = clock
        self.monotonic = monotonic
        self.leeway_s = leeway
        self.lifetime = Lifetime()
        self.login_needed = True
        self.login_needed_reason = "not logged in: run `tracker login`"
        self._unsaved = False  # a rotated pair we could not write yet (disk full)
        self._generation = 0
        self._refresh_lock = asyncio.Lock()
        self.refresh_count = 0

    # --- the authlib transport hooks (cf. authlib's httpx AsyncOAuth2Client) ---------------

    async def _http_post(
        self,
        url: str,
        body: str | None = None,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        """POST a form to the token or revocation endpoint, signed by authlib's ClientAuth."""
        # authlib passes its module-level DEFAULT_HEADERS: copy before ClientAuth writes to it.
        headers = dict(headers or {"Content-Type": "application/x-www-form-urlencoded"})
        headers.setdefault("Accept", "application/json")
        body = body or ""
        if auth is not None:
            url, headers, body = auth.prepare("POST", url, headers, body)
        what = "the revocation endpoint" if url == self.endpoints.revoke else "the token endpoint"
        return await send(
            self.http, "POST", url, what=what, headers=headers, data=body.encode("utf-8"),
            timeout=self.timeout,
        )  # fmt: skip

    async def _fetch_token(
        self,
        url: str,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        method: str = "POST",
        **kwargs: Any,
    ) -> OAuth2Token:
        """The authorization-code exchange (authlib built ``body`` and checked ``state``)."""
        reply = await self._http_post(url, body=body, auth=auth, headers=headers)
        for hook in self.compliance_hook["access_token_response"]:
            reply = hook(reply)
        return self._accept_token_reply(reply, previous_refresh_token=None)

    async def _refresh_token(
        self,
        url: str,
        refresh_token: str | None = None,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        **kwargs: Any,
    ) -> OAuth2Token:
        reply = await self._http_post(url, body=body, auth=auth, headers=headers)
        # From here the refresh token we sent is dead at the server: the reply is the only copy
        # of its successor. Nothing awaits between this line and the durable write below.
        token_module.checkpoint("reply_received")
        for hook in self.compliance_hook["refresh_token_response"]:
            reply = hook(reply)
        return self._accept_token_reply(reply, previous_refresh_token=refresh_token)

    def _accept_token_reply(
        self, reply: Reply, *, previous_refresh_token: str | None
    ) -> OAuth2Token:
        """Parse a token endpoint reply (authlib), stamp its lifetime, persist it, adopt it."""
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
        register_secret(token.get("access_token"))
        register_secret(token.get("refresh_token"))
        if "refresh_token" not in token and previous_refresh_token:
            token["refresh_token"] = previous_refresh_token  # the server did not rotate
        self._stamp(token)
        if self.store is not None:
            self._persist()
        self.login_needed = False
        return token

    def _stamp(self, token: OAuth2Token) -> None:
        expires_in = _number(token.get("expires_in"))
        now = self.clock()
        expires_at = now + expires_in if now is not None and expires_in is not None else None
        token["received_at"] = now
        token["expires_at"] = expires_at  # authlib filled it from the untrusted time.time()
        self.lifetime = Lifetime(expires_in, expires_at, self.monotonic())

    def _persist(self) -> None:
        """Write the current pair to the store now (synchronously: no await in between)."""
        assert self.store is not None
        try:
            record = self.store.save(self.token)
        except StorageError as exc:
            # The old refresh token is already dead, so the pair in memory is the only valid
            # one: keep using it and keep trying to write it before every request.
            self._unsaved = True
            log.error("the new login could not be saved; keeping it in memory", error=str(exc))
            return
        self._unsaved = False
        self._generation = int(record["generation"])

    # --- state -------------------------------------------------------------------------------

    def load_from_store(self) -> bool:
        """Adopt the stored pair if it differs from ours. True when logged in afterwards."""
        if self.store is None:
            return not self.login_needed
        record = self.store.load()
        if record is None or record.get("state") != "logged_in":
            reason = (record or {}).get("reason") or "not logged in"
            self.login_needed = True
            self.login_needed_reason = f"{reason}: run `tracker login`"
            return False
        if self.token and record.get("refresh_token") == self.token.get("refresh_token"):
            self.login_needed = False
            return True
        self._adopt(record)
        return True

    def load_from_store_or_login_needed(self) -> bool:
        """:meth:`load_from_store`, with an unreadable or damaged file meaning "login needed"."""
        try:
            return self.load_from_store()
        except StorageError as exc:
            self.login_needed = True
            self.login_needed_reason = f"{exc}"
            return False

    def _adopt(self, record: Mapping[str, Any]) -> None:
        self.token_auth.set_token(
            {k: v for k, v in record.items() if k not in ("version", "state")}
        )
        self.lifetime = Lifetime(
            _number(record.get("expires_in")), _number(record.get("expires_at")), None
        )
        self._generation = int(record.get("generation", 0))
        self.login_needed = False

    def seconds_left(self) -> float | None:
        """Seconds until the access token expires, or None when that cannot be known."""
        life = self.lifetime
        if life.expires_in is None:
            return None
        if life.mono_received is not None:
            return life.mono_received + life.expires_in - self.monotonic()
        now = self.clock()
        if now is None or life.expires_at is None:
            return None
        left = life.expires_at - now
        if left > life.expires_in + MAX_CLOCK_SKEW_S:
            return None  # stored on a wrong clock, or the clock is wrong now
        return left

    def needs_refresh(self) -> bool:
        left = self.seconds_left()
        return left is not None and left <= leeway_for(self.lifetime.expires_in, self.leeway_s)

    # --- refreshing --------------------------------------------------------------------------

    async def ensure_active_token(
        self, token: Any = None, *, failed_access_token: str | None = None
    ) -> None:
        """Make sure the current access token is usable; refresh when it is (about to be)
        expired, or when ``failed_access_token`` (the one a 401 refused) is still current."""
        if self.login_needed and not self.load_from_store_or_login_needed():
            raise LoginNeededError(self.login_needed_reason)
        if self._unsaved:
            self._persist()
        forced = failed_access_token is not None
        if not forced and not self.needs_refresh():
            return
        async with self._refresh_lock:
            current = self.token.get("access_token")
            if forced and current != failed_access_token:
                return  # another task refreshed while we waited
            if not forced and not self.needs_refresh():
                return
            await self._refresh_under_file_lock(forced=forced)

    async def _refresh_under_file_lock(self, *, forced: bool) -> None:
        assert self.store is not None
        lock_fd = await self._take_file_lock()
        try:
            before = self.token.get("refresh_token")
            if not self._unsaved:
                try:
                    logged_in = self.load_from_store()
                except StorageError as exc:  # unreadable now: the pair in memory is still ours
                    log.warning(
                        "cannot re-read the token file before refreshing", error=str(exc)
                    )
                    logged_in = True
                if not logged_in:
                    raise LoginNeededError(self.login_needed_reason)
            if self.token.get("refresh_token") != before and (forced or not self.needs_refresh()):
                log.info("using the login another tracker process refreshed")
                return
            refresh_token = self.token.get("refresh_token")
            if not refresh_token:
                self._login_needed("the stored login has no refresh token")
            log.info("refreshing the access token", forced=forced)
            token_module.checkpoint("refresh_starting")
            try:
                await self.refresh_token(self.endpoints.token, refresh_token=refresh_token)
            except TokenRefusedError as exc:
                self._token_endpoint_refused(exc.error)
            self.refresh_count += 1
            log.info("access token refreshed", token_expires_in=self.lifetime.expires_in)
        finally:
            self.store.unlock(lock_fd)

    async def _take_file_lock(self) -> int:
        assert self.store is not None
        deadline = self.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fd = self.store.try_lock()
            except OSError as exc:
                raise StorageError(f"cannot lock the token store: {exc.strerror}") from None
            if fd is not None:
                return fd
            if self.monotonic() > deadline:
                raise RetryableApiError("another tracker process holds the token lock")
            await asyncio.sleep(LOCK_POLL_S)

    def _token_endpoint_refused(self, code: str) -> None:
        if code == "invalid_grant":
            self._login_needed("the server refused the stored login (invalid_grant)")
        if code in ("invalid_client", "unauthorized_client"):
            raise AuthError(
                f"the server refused this installation's client credentials ({code}): "
                "check [api] client_id and client_secret"
            ) from None
        raise TokenRefusedError(code, f"the token endpoint refused the refresh ({code})")

    def _login_needed(self, reason: str) -> None:
        self.login_needed = True
        self.login_needed_reason = f"{reason}: run `tracker login`"
        if self.store is not None:
            try:
                self.store.mark_login_needed(reason)
            except StorageError as exc:
                log.error("cannot record the login-needed state", error=str(exc))
        log.error("login needed", reason=reason, login_state="login_needed")
        raise LoginNeededError(self.login_needed_reason)

    # --- authorized requests -----------------------------------------------------------------

    async def authorized_request(
        self, method: str, url: str, *, what: str, form: Callable[[], Any]
    ) -> Reply:
        """Send a Bearer-signed request; on 401 refresh once and send it again.

        ``form`` builds the body afresh for each attempt (a multipart body is single-use).
        Non-2xx replies other than a first 401 are raised as our error types.
        """
        await self.ensure_active_token()
        for attempt in (1, 2):
            access_token = self.token["access_token"]
            signed_url, headers, _ = self.token_auth.prepare(url, {}, "")  # authlib: Bearer
            reply = await send(
                self.http, method, signed_url, what=what, headers=headers, data=form(),
                timeout=self.timeout,
            )  # fmt: skip
            if reply.status_code != 401:
                if reply.status_code >= 300:
                    raise classify_status(reply)
                return reply
            if attempt == 1:
                log.info("access token refused (HTTP 401); refreshing once", what=what)
                await self.ensure_active_token(failed_access_token=access_token)
        raise AuthError(
            f"{what}: the server refused the access token even after a refresh (HTTP 401)"
        )

    async def revoke(self, token: str, token_type_hint: str) -> None:
        """RFC 7009 revocation (authlib builds the body; Basic client auth as the contract says)."""
        reply: Reply = await self.revoke_token(
            self.endpoints.revoke, token=token, token_type_hint=token_type_hint
        )
        if reply.status_code >= 300:
            raise classify_status(reply)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
        return None
    return float(value)
