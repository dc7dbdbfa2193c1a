"""One exception family for the whole tracker.

Every error a user can meet derives from :class:`TrackerError`, so the CLI can turn any of them
into one plain line and the right exit code, and nothing else (a bug) is mistaken for one.
Messages say what happened and, where there is one, what the user can do about it. They never
contain a secret: callers pass descriptions, not tokens.
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base of every error the tracker reports to a user. Exit code 1 unless a subclass says."""

    exit_code = 1


class ConfigError(TrackerError):
    """The configuration file or a command-line setting is wrong (exit code 2).

    ``problems`` holds one line per problem: file, key, what was wrong, what is allowed.
    """

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class GpsInputError(TrackerError):
    """The GPS receiver or the recorded log cannot be read."""


class AuthError(TrackerError):
    """Not logged in, or the stored login was rejected: run `tracker login`."""


class LoginNeededError(AuthError):
    """The server refused our refresh token (``invalid_grant``): a new login is needed."""


class ApiError(TrackerError):
    """A Map My Tracks request failed.

    ``retryable`` tells the uplink whether waiting and trying again can help (timeouts, dropped
    connections, 5xx, 429). ``retry_after`` is the server's Retry-After in seconds, if it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class RetryableApiError(ApiError):
    """A transient failure: the same request may succeed later.

    ``maybe_applied``: the request may have reached the server and been applied (no reply, a
    reply cut off, a timeout), as opposed to one that surely was not (no connection, an HTTP
    error status). Idempotent calls do not care; ``uploadActivity`` is not idempotent and must
    not be sent again blindly after such a failure.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message, status=status, retryable=True, retry_after=retry_after)
        self.maybe_applied = maybe_applied


class PermanentApiError(ApiError):
    """The server rejected the request itself (403 or another 4xx): repeating it will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=False)


class StorageError(TrackerError):
    """The durable outbox or the token store cannot be written or read (disk full, read-only,
    corrupt database)."""


class ServiceNotRunningError(TrackerError):
    """`tracker start/stop/status` could not reach a running `tracker run`."""
