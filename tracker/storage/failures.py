"""What went wrong with the storage, in words a rider (or their log) can act on.

The outbox decides from these whether to keep retrying the disk (full, read-only: the rider can
free space or fix the mount) or to leave the file alone for good (corrupt: moving it aside is the
rider's call, never ours).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def is_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


def is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc).lower()
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or (
        "malformed" in text or "not a database" in text
    )


def describe(exc: BaseException, path: Path) -> str:
    """One plain line a rider (or their log) can act on."""
    text = str(exc)
    if is_corrupt(exc):
        return (
            f"the database {path} is corrupt ({text}); move it aside to start a new one "
            "(the tracker keeps running from memory meanwhile)"
        )
    if is_full(exc):
        return f"no space left for {path} (disk full or storage.max_mb reached): {text}"
    read_only_dir = path.parent.is_dir() and not os.access(path.parent, os.W_OK)
    if (
        isinstance(exc, PermissionError)
        or read_only_dir
        or "readonly" in text
        or "read-only" in text
    ):
        return f"cannot write {path}: the data dir is read-only or not ours ({text})"
    return f"{path}: {text}"
