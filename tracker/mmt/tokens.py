"""The OAuth token pair on disk: one small JSON file, 0600, replaced atomically, crash-safe.

Why this much care for one file: Map My Tracks *rotates* refresh tokens. The refresh token we
send dies at the server the moment it is used, and the reply carries the only copy of its
successor. If that successor is not durably on disk before anything else happens, a crash or a
power cut logs the rider out for good, in the middle of a ride. So:

* the file is created 0600 (``O_CREAT`` with mode 0600, never chmod-after), in a 0700 directory;
* a save writes ``tokens.json.tmp`` in the same directory, fsyncs it, renames it over
  ``tokens.json`` and fsyncs the directory: a reader sees the old pair or the new one, never half;
* every save carries a ``generation`` number. If a process dies after the temp file was complete
  and synced but before the rename, :meth:`TokenStore.load` finds a complete temp file with a
  higher generation and promotes it, so even that window does not lose the new pair;
* every writer (a refresh, login, logout) holds an advisory lock (``tokens.json.lock``,
  ``flock``) around its read-modify-write, so two processes (``tracker run`` and
  ``tracker logout``, say) never spend the same refresh token twice. :meth:`save`,
  :meth:`mark_login_needed` and :meth:`delete` do not take it themselves (``flock`` is per open
  file, so a nested take would deadlock): callers hold :meth:`locked` or :meth:`try_lock`.

The one window no client can close is a reply that never reaches our disk: lost in transit, or
the process killed between the reply arriving and the ``write`` of the temp file. The server
has already rotated, our copy is dead, and the next refresh gets ``invalid_grant`` → "login
needed" (queued points are kept; `tracker login` resumes). See docs/login.md.

Tokens are registered with :func:`tracker.logs.register_secret` whenever they are loaded or
saved, so they are masked in any log line that might quote them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Final, TypedDict, cast

from tracker.errors import StorageError
from tracker.logs import get_logger, register_secret

TOKEN_FILE: Final = "tokens.json"  # noqa: S105 - a file name
FORMAT_VERSION: Final = 1

# Keys written to disk. Anything else a server adds (scope, id_token, ...) is kept only when it
# is a plain JSON value, so a surprising reply cannot break the file.
_TOKEN_KEYS: Final = ("access_token", "refresh_token", "token_type", "expires_in", "scope")



log = get_logger("tokens")

# Test hook for the crash-safety tests: called with the name of each step of a save
# ("temp_written", "renamed", "dir_synced") and by the OAuth client with "refresh_starting"
# (lock held, request not sent) and "reply_received" (the server has rotated).
# A test subprocess sets it to a function that SIGKILLs the process at one chosen step.
crash_hook: Callable[[str], None] | None = None


class TokenRecord(TypedDict, total=False):
    """What the token file holds (see :class:`TokenStore`)."""

    version: int
    generation: int
    state: str  # "logged_in" | "login_needed"
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: float
    scope: str
    received_at: float | None
    expires_at: float | None
    saved_at: float
    reason: str  # login_needed only


def checkpoint(step: str) -> None:
    """Mark a step of a token refresh; the crash-safety tests kill the process here."""
    if crash_hook is not None:
        crash_hook(step)


class TokenStore:
    """The token file of one data directory.

    The stored object is a plain dict::

        {"version": 1, "generation": 7, "state": "logged_in" | "login_needed",
         "access_token": ..., "refresh_token": ..., "token_type": "Bearer",
         "expires_in": 3600, "received_at": 1732540000.0 | null, "expires_at": 1732543600 | null,
         "saved_at": ..., "reason": ... (login_needed only)}

    ``received_at``/``expires_at`` are on the *trusted* clock (GPS time or a plausible system
    clock) and null when no trusted time was known when the pair arrived; see
    :mod:`tracker.mmt.oauth` for how expiry is judged then.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str]) -> TokenStore:
        return cls(Path(data_dir) / TOKEN_FILE)

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    # -- reading ------------------------------------------------------------------------------

    def load(self) -> TokenRecord | None:
        """The stored record (tokens or a "login needed" marker), or None when there is none.

        A complete temp file with a higher generation than the main file is a save that was
        interrupted after its fsync and before its rename: it is the newest pair, so it is
        returned, and promoted to the main file when no other writer holds the lock.
        """
        if not self.path.parent.is_dir():
            return None
        try:
            lock_fd = self.try_lock()
        except OSError:
            lock_fd = None  # a read-only data dir: read, but touch nothing
        try:
            main = self._read(self.path)
            tmp = self._read(self.tmp_path, quiet=True)
            newest = main
            if tmp is not None and (main is None or _generation(tmp) > _generation(main)):
                newest = tmp
                if lock_fd is not None:
                    log.warning(
                        "token store: finishing an interrupted save", path=str(self.path)
                    )
                    try:
                        os.replace(self.tmp_path, self.path)
                        _fsync_dir(self.path.parent)
                    except OSError as exc:
                        raise StorageError(
                            f"cannot finish the interrupted token save: {exc.strerror}"
                        ) from None
            elif lock_fd is not None and self.tmp_path.exists():
                with contextlib.suppress(OSError):
                    self.tmp_path.unlink()  # partial or stale: the main file is newer
        finally:
            if lock_fd is not None:
                self.unlock(lock_fd)
        if newest is not None:
            register_secret(newest.get("access_token"))
            register_secret(newest.get("refresh_token"))
        return newest

    def load_tokens(self) -> TokenRecord | None:
        """The stored token record when logged in, else None (no file, or login needed)."""
        record = self.load()
        if record is None or record.get("state") != "logged_in":
            return None
        return record

    def _read(self, path: Path, *, quiet: bool = False) -> TokenRecord | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            if quiet:
                return None
            raise StorageError(f"{path}: cannot read the token file: {exc.strerror}") from None
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not _is_valid_record(record):
            if quiet:
                return None
            raise StorageError(
                f"{path}: the token file is damaged; run `tracker login` to replace it"
            )
        return cast(TokenRecord, record)

    # -- writing ------------------------------------------------------------------------------

    def save(self, token: Mapping[str, object], **extra: object) -> TokenRecord:
        """Store a token pair durably (atomic replace + fsyncs). Returns the record written."""
        record: dict[str, object] = {k: token[k] for k in _TOKEN_KEYS if token.get(k) is not None}
        if not record.get("access_token"):
            raise StorageError("refusing to store a token reply without an access_token")
        for secret in ("access_token", "refresh_token"):
            value = record.get(secret)
            register_secret(value if isinstance(value, str) else None)
        for key in ("received_at", "expires_at"):
            record[key] = extra.pop(key, token.get(key))
        record.update(extra)
        record["state"] = "logged_in"
        return self._write(record)

    def mark_login_needed(self, reason: str) -> TokenRecord:
        """Replace the (dead) tokens with a "login needed" marker that `status` can show."""
        return self._write({"state": "login_needed", "reason": reason})

    def delete(self) -> bool:
        """Remove the token file (and any temp file). True if there was one."""
        existed = False
        for path in (self.path, self.tmp_path):
            try:
                path.unlink()
                existed = existed or path == self.path
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(
                    f"{path}: cannot delete the token file: {exc.strerror}"
                ) from None
        with contextlib.suppress(OSError):
            _fsync_dir(self.path.parent)
        return existed

    def _write(self, fields: Mapping[str, object]) -> TokenRecord:
        previous = [self._read(p, quiet=True) for p in (self.path, self.tmp_path)]
        record = {
            "version": FORMAT_VERSION,
            "generation": max(_generation(p) for p in previous if p is not None) + 1
            if any(previous)
            else 1,
            **fields,
            "saved_at": time.time(),
        }
        data = json.dumps(record, indent=1, sort_keys=True).encode("utf-8")
        try:
            self._ensure_dir()
            with contextlib.suppress(FileNotFoundError):
                self.tmp_path.unlink()  # O_EXCL below: never reuse a file someone else made
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            checkpoint("temp_written")
            os.replace(self.tmp_path, self.path)
            checkpoint("renamed")
            _fsync_dir(self.path.parent)
            checkpoint("dir_synced")
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.tmp_path.unlink()
            what = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
            raise StorageError(f"{self.path}: cannot write the token file: {what}") from None
        return cast(TokenRecord, record)

    def _ensure_dir(self) -> None:
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- the refresh lock ---------------------------------------------------------------------

    def try_lock(self) -> int | None:
        """Take the inter-process refresh lock without waiting: an fd to pass to :meth:`unlock`,
        or None when another process holds it."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Blocking form of the refresh lock, for synchronous callers (logout)."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            self.unlock(fd)


def _generation(record: TokenRecord) -> int:
    value = record.get("generation", 0)
    return value if isinstance(value, int) else 0


def _is_valid_record(record: object) -> bool:
    if not isinstance(record, dict) or record.get("version") != FORMAT_VERSION:
        return False
    if record.get("state") == "login_needed":
        return True
    return (
        record.get("state") == "logged_in"
        and isinstance(record.get("access_token"), str)
        and bool(record["access_token"])
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
