"""The data dir is 0700 and the database with its ``-wal``/``-shm`` 0600, whoever created them.

The outbox is the rider's location history: no other local user may read it. A mode passed to
``mkdir``/``open`` is narrowed by the umask but never widened, so creating the dir and the
database file ourselves with the private mode holds under any umask, with no moment of wider
permissions. SQLite then gives the ``-wal`` and ``-shm`` it creates the database file's mode.
What an earlier version (or the rider) left too open is tightened, never widened (a read-only
0444 file stays read-only), and said once per file: a rider should know the history was
readable.

A shared directory (sticky bit, like ``/tmp``) or one owned by someone else is left alone with a
warning: chmod-ing it would break other users.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tracker.logs import get_logger

log = get_logger("outbox")

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm")  # SQLite's WAL-mode companions of the database file

# Paths already reported in this process: a retry of the disk every few seconds must not repeat
# the same line.
_reported: set[str] = set()


def private_dir(path: Path) -> None:
    """Create the data dir 0700 (parents as usual), or tighten an existing one."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
        return
    except FileExistsError:
        pass
    _tighten(path, DIR_MODE, is_dir=True)


def private_database(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite would create it 0644 under
    the usual umask), or tighten it and its ``-wal``/``-shm`` if they exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    else:
        os.close(fd)  # an empty file is a valid new SQLite database
    for suffix in SIDE_FILES:
        _tighten(path.with_name(path.name + suffix), FILE_MODE)


def _tighten(path: Path, allowed: int, *, is_dir: bool = False) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if not mode & ~allowed & 0o777:
        return
    key = str(path)
    if is_dir and (st.st_mode & stat.S_ISVTX or st.st_uid != os.geteuid()):
        _warn_once(
            key,
            "the data dir is shared with other users; the location history in it may be "
            "readable by them (use a data dir of your own)",
            mode=oct(mode),
        )
        return
    narrowed = mode & allowed
    try:
        os.chmod(path, narrowed)
    except OSError as exc:
        _warn_once(key, "cannot make the location history private", mode=oct(mode), reason=str(exc))
        return
    _warn_once(
        key,
        "the location history was readable by other users; made it private",
        was=oct(mode),
        now=oct(narrowed),
    )


def _warn_once(path: str, event: str, **fields: str) -> None:
    """One warning per path for the life of the process (a restart of the outbox says nothing
    new)."""
    if path not in _reported:
        _reported.add(path)
        log.warning(event, path=path, **fields)
