"""The HTTP side of the v3 API: its URLs, one exchange over aiohttp, and what a reply means.

Everything here is shared by the OAuth adapter (token and revocation endpoints) and the activity
calls: the HTTPS rule, :func:`send` (read to the end, optionally up to a size cap; every transport
failure becomes a :class:`~tracker.errors.RetryableApiError`), the classification of non-2xx
replies for the uplink's retry policy, and the one multipart form builder (a body per attempt:
an ``aiohttp.FormData`` is single-use).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from tracker.config import base_url_problem
from tracker.errors import (
    ApiError,
    AuthError,
    ConfigError,
    PermanentApiError,
    RetryableApiError,
)
from tracker.logs import scrub

READ_CHUNK: Final = 16 * 1024

BodyFactory = Callable[[], aiohttp.FormData]
"""Builds a fresh request body for each attempt."""


# -- endpoints and the HTTPS rule --------------------------------------------------------------


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; ConfigError unless HTTPS or loopback HTTP (the
    rule is the config's own, :func:`tracker.config.base_url_problem`)."""
    problem = base_url_problem(base_url)
    if problem:
        raise ConfigError(f"[api] base_url {problem}")
    return base_url.rstrip("/")


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


# -- multipart bodies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePart:
    """A file field of a multipart form (the GPX of ``uploadActivity``)."""

    name: str
    content: bytes = field(repr=False)
    filename: str
    content_type: str


FormField = tuple[str, str] | FilePart


def multipart(fields: Sequence[FormField]) -> BodyFactory:
    """A factory of identical multipart bodies, as the v3 docs' ``curl -F`` examples send."""
    frozen = tuple(fields)

    def build() -> aiohttp.FormData:
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for item in frozen:
            if isinstance(item, FilePart):
                form.add_field(item.name, item.content, filename=item.filename,
                               content_type=item.content_type)  # fmt: skip
            else:
                form.add_field(item[0], item[1])
        return form

    return build


# -- the reply and its classification -----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A fully read HTTP reply, with the sync surface authlib's response parsing expects.

    The body is left out of ``repr``: it may hold tokens, and a repr ends up in tracebacks.
    """

    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    content: bytes = field(repr=False)
    what: str  # "the token endpoint", "startActivity", ...

    def json(self) -> object:
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


class ReplyTooLargeError(PermanentApiError):
    """A reply longer than the caller's cap (nothing of it is used)."""


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


# -- one exchange -------------------------------------------------------------------------------


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str],
    data: bytes | aiohttp.FormData,
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's per-request timeout
    max_bytes: int | None = None,
) -> Reply:
    """One HTTP exchange, read to the end (at most ``max_bytes``: ReplyTooLargeError beyond);
    transport failures become RetryableApiError."""
    try:
        async with session.request(
            method, url, headers=dict(headers), data=data, timeout=timeout, allow_redirects=False
        ) as resp:
            content = await _read(resp, what, max_bytes)
            return Reply(resp.status, dict(resp.headers), content, what)
    except TimeoutError:
        raise RetryableApiError(
            f"{what}: no reply within {timeout.total:g} s", maybe_applied=True
        ) from None
    except aiohttp.ServerDisconnectedError:
        raise RetryableApiError(
            f"{what}: the server closed the connection without a reply", maybe_applied=True
        ) from None
    except aiohttp.ClientPayloadError:
        raise RetryableApiError(f"{what}: the reply was cut off", maybe_applied=True) from None
    except aiohttp.ClientConnectorError as exc:
        reason = scrub(str(exc.os_error.strerror or exc.os_error)) if exc.os_error else "failed"
        raise RetryableApiError(f"{what}: cannot connect to the server: {reason}") from None
    except aiohttp.ClientError as exc:
        raise RetryableApiError(
            f"{what}: connection failed ({type(exc).__name__})", maybe_applied=True
        ) from None
    except OSError as exc:
        raise RetryableApiError(
            f"{what}: network error: {exc.strerror or 'failed'}", maybe_applied=True
        ) from None


async def _read(resp: aiohttp.ClientResponse, what: str, max_bytes: int | None) -> bytes:
    if max_bytes is None:
        return await resp.read()
    too_large = ReplyTooLargeError(
        f"{what}: the reply is too large (over {max_bytes // 1024} KiB)", status=resp.status
    )
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
