"""Whether a login is needed, and why: the state the LED, `tracker status` and every call see.

``invalid_grant`` on a refresh (the pair is dead), or no tokens at all, means "login needed":
calls fail at once with :class:`~tracker.errors.LoginNeededError` without touching the network,
the reason is written to the token file (so `tracker status` can say it after a restart), and
it is logged once. A `tracker login` made meanwhile clears it (the keeper re-reads the file).
"""

from __future__ import annotations

from typing import NoReturn

from tracker.errors import LoginNeededError, StorageError
from tracker.logs import get_logger
from tracker.mmt.tokens import TokenStore

log = get_logger("oauth")

NOT_LOGGED_IN = "not logged in"


class LoginState:
    """"Logged in" or "login needed, because …" (starts as login needed: nothing is loaded)."""

    def __init__(self, store: TokenStore | None) -> None:
        self.store = store
        self.needed = True
        self.reason = f"{NOT_LOGGED_IN}: run `tracker login`"

    def logged_in(self) -> None:
        self.needed = False

    def missing(self, message: str) -> None:
        """No usable pair on disk (none, a marker, or a damaged file): nothing to record.
        ``message`` is the whole text shown, advice included."""
        self.needed = True
        self.reason = message

    def refused(self, reason: str) -> NoReturn:
        """The server refused the pair: record it in the token file, log it, raise."""
        self.needed = True
        self.reason = f"{reason}: run `tracker login`"
        if self.store is not None:
            try:
                self.store.mark_login_needed(reason)
            except StorageError as exc:
                log.error("cannot record the login-needed state", error=str(exc))
        log.error("login needed", reason=reason, login_state="login_needed")
        raise self.error()

    def error(self) -> LoginNeededError:
        return LoginNeededError(self.reason)
