"""Keeps one token pair alive for a long-running tracker and signs requests with it.

:class:`TokenKeeper` wires three small parts: the protocol (:class:`AiohttpOAuth2Client`), the
refresh timing (:class:`RefreshPolicy`: due by the monotonic clock that received the pair, or
after a 401) and the login-needed state (:class:`LoginState`), around the token file:

* **Rotation, crash-safe.** A refresh reply is written to the :class:`TokenStore` (atomic,
  fsynced) synchronously, before control returns to the event loop, so no request can use the
  new pair before it is on disk. The refresh runs under the store's inter-process lock and
  re-reads the file first, so a pair another process already rotated is adopted, not re-spent.
* **One refresh-and-retry on 401**, and several requests meeting a 401 together cause one refresh.
* **A disk that refuses the write** (full, read-only): the new pair is the only valid one, so it
  is kept in memory and written again before every request until that works.
* **Login needed** is re-checked against the file on every call, so a `tracker login` made while
  the service runs is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from authlib.oauth2.rfc6749 import OAuth2Token

from tracker.errors import AuthError, RetryableApiError, StorageError
from tracker.logs import get_logger
from tracker.mmt import tokens as token_module
from tracker.mmt.expiry import (
    DEFAULT_LEEWAY_S,
    Lifetime,
    Monotonic,
    RefreshPolicy,
    WallClock,
    system_clock,
)
from tracker.mmt.http import BodyFactory, Endpoints, Reply, classify_status, send
from tracker.mmt.login_state import NOT_LOGGED_IN, LoginState
from tracker.mmt.oauth import AiohttpOAuth2Client, TokenRefusedError, token_timeout
from tracker.mmt.tokens import TokenRecord, TokenStore

LOCK_POLL_S = 0.05
LOCK_TIMEOUT_S = 30.0

log = get_logger("oauth")


class TokenKeeper:
    """The current pair of one token file: loads, refreshes, persists, and signs requests."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore,
        timeout: aiohttp.ClientTimeout | None = None,
        token_timeout_s: float = 30.0,
        clock: WallClock = system_clock,
        monotonic: Monotonic = time.monotonic,
        leeway: float = DEFAULT_LEEWAY_S,
    ) -> None:
        self.protocol = AiohttpOAuth2Client(
            session, base_url=base_url, client_id=client_id, client_secret=client_secret,
            timeout=token_timeout(token_timeout_s), clock=clock, update_token=self._refreshed,
            leeway=leeway,
        )  # fmt: skip
        self.http = session
        self.store = store
        self.timeout = timeout or aiohttp.ClientTimeout(total=30, connect=10)
        self.monotonic = monotonic
        self.policy = RefreshPolicy(monotonic=monotonic, leeway=leeway)
        self.state = LoginState(store)
        self._unsaved = False  # a rotated pair we could not write yet (disk full)
        self._refresh_lock = asyncio.Lock()
        self.refresh_count = 0

    # --- what callers read ---------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        endpoints: Endpoints = self.protocol.endpoints
        return endpoints

    @property
    def token(self) -> OAuth2Token:
        return self.protocol.token

    @property
    def lifetime(self) -> Lifetime:
        return self.policy.lifetime

    @property
    def login_needed(self) -> bool:
        return self.state.needed

    @property
    def login_needed_reason(self) -> str:
        return self.state.reason

    def seconds_left(self) -> float | None:
        """Seconds until the access token expires, or None when that cannot be known."""
        return self.policy.seconds_left()

    def needs_refresh(self) -> bool:
        return self.policy.due()

    # --- the token file ------------------------------------------------------------------------

    def load_from_store(self) -> bool:
        """Adopt the stored pair if it differs from ours. True when logged in afterwards."""
        record = self.store.load()
        if record is None or record.get("state") != "logged_in":
            reason = (record or {}).get("reason") or NOT_LOGGED_IN
            self.state.missing(f"{reason}: run `tracker login`")
            return False
        if self.token and record.get("refresh_token") == self.token.get("refresh_token"):
            self.state.logged_in()
            return True
        self._adopt(record)
        return True

    def load_from_store_or_login_needed(self) -> bool:
        """:meth:`load_from_store`, with an unreadable or damaged file meaning "login needed"."""
        try:
            return self.load_from_store()
        except StorageError as exc:
            self.state.missing(str(exc))
            return False

    def _adopt(self, record: TokenRecord) -> None:
        pair: Mapping[str, object] = {
            k: v for k, v in record.items() if k not in ("version", "state")
        }
        self.protocol.token_auth.set_token(dict(pair))
        self.policy.adopted(record.get("expires_in"), record.get("expires_at"))
        self.state.logged_in()

    def _refreshed(self, token: OAuth2Token, *, refresh_token: str | None = None) -> None:
        """authlib's ``update_token``: runs right after the reply, with no await in between."""
        self.policy.received(token.get("expires_in"), token.get("expires_at"))
        self._persist()
        self.state.logged_in()

    def _persist(self) -> None:
        """Write the current pair to the store now (synchronously: no await in between)."""
        try:
            self.store.save(self.token)
        except StorageError as exc:
            # The old refresh token is already dead, so the pair in memory is the only valid
            # one: keep using it and keep trying to write it before every request.
            self._unsaved = True
            log.error("the new login could not be saved; keeping it in memory", error=str(exc))
            return
        self._unsaved = False

    # --- refreshing ----------------------------------------------------------------------------

    async def ensure_active_token(self, *, failed_access_token: str | None = None) -> None:
        """Make sure the current access token is usable; refresh when it is due by the monotonic
        clock, or when ``failed_access_token`` (the one a 401 refused) is still current."""
        if self.state.needed and not self.load_from_store_or_login_needed():
            raise self.state.error()
        if self._unsaved:
            self._persist()
        forced = failed_access_token is not None
        if not forced and not self.policy.due():
            return
        async with self._refresh_lock:
            current = self.token.get("access_token")
            if forced and current != failed_access_token:
                return  # another task refreshed while we waited
            if not forced and not self.policy.due():
                return
            await self._refresh_under_file_lock(forced=forced)

    async def _refresh_under_file_lock(self, *, forced: bool) -> None:
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
                    raise self.state.error()
            if self.token.get("refresh_token") != before and (forced or not self.policy.due()):
                log.info("using the login another tracker process refreshed")
                return
            refresh_token = self.token.get("refresh_token")
            if not refresh_token:
                self.state.refused("the stored login has no refresh token")
            log.info("refreshing the access token", forced=forced)
            token_module.checkpoint("refresh_starting")
            try:
                await self.protocol.refresh_token(
                    self.endpoints.token, refresh_token=refresh_token
                )
            except TokenRefusedError as exc:
                self._token_endpoint_refused(exc.error)
            self.refresh_count += 1
            log.info("access token refreshed", token_expires_in=self.lifetime.expires_in)
        finally:
            self.store.unlock(lock_fd)

    async def _take_file_lock(self) -> int:
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
            self.state.refused("the server refused the stored login (invalid_grant)")
        if code in ("invalid_client", "unauthorized_client"):
            raise AuthError(
                f"the server refused this installation's client credentials ({code}): "
                "check [api] client_id and client_secret"
            ) from None
        raise TokenRefusedError(code, f"the token endpoint refused the refresh ({code})")

    # --- authorized requests -------------------------------------------------------------------

    async def authorized_request(
        self, method: str, url: str, *, what: str, form: BodyFactory
    ) -> Reply:
        """Send a Bearer-signed request; on 401 refresh once and send it again.

        ``form`` builds the body afresh for each attempt (a multipart body is single-use).
        Non-2xx replies other than a first 401 are raised as our error types.
        """
        await self.ensure_active_token()
        for attempt in (1, 2):
            access_token = self.token["access_token"]
            signed_url, headers, _ = self.protocol.token_auth.prepare(url, {}, "")  # Bearer
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
        """RFC 7009 revocation of ``token`` (not necessarily the current one)."""
        await self.protocol.revoke(token, token_type_hint)
