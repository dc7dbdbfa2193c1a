"""The fix journal: the fixes fed to the recording sampler since its state was last committed.

Why it exists (issue 17): at 1 epoch/s a group commit took one SQLite transaction a second for
nothing but the sampler's new state (most fixes keep no point): BEGIN, a 2 KB snapshot, an
fsync, each paid cold after a second asleep, and the snapshot pickled before it. Here that
commit is one fixed-size record per fix appended to a plain file and one ``fdatasync``: the
same durability (a fix is on disk before the next wake-up), a third of the CPU. After a crash
the outbox restores the sampler from its last committed state and feeds it the journal's
newer fixes: the sampler's state is a pure function of the fixes fed, so it is exactly the
state the lost process had (and the points it made but had not committed come out again, the
same ones).

Format: one record per fix, little-endian, with a CRC-32 of its body, so a record torn by a
power cut ends the journal where it starts. Every field of the fix is kept, exactly (the time
as integer microseconds, absent values flagged), so a replayed fix equals the fix fed.

The journal is emptied when a SQLite commit has stored a sampler state that covers it; it is
only an extension of that state, never the home of a point. Appending blocks the calling thread
for one ``fdatasync`` of one small record (the outbox calls it from the event loop: a thread
hop per fix cost more CPU than the write).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tracker.model import Fix, FixMode

JOURNAL_NAME = "fixes.journal"
# activity id, time (µs since the epoch), unix, lat, lon, mode, which optionals are present,
# alt_msl, speed_mps, course_deg, hdop, sats; then the CRC-32 of all that.
_BODY = struct.Struct("<IqdddBBddddi")
_CRC = struct.Struct("<I")
RECORD_SIZE = _BODY.size + _CRC.size
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ALT, _SPEED, _COURSE, _HDOP, _SATS = 1, 2, 4, 8, 16


def encode(local_id: int, fix: Fix) -> bytes:
    """One record: the fix's every field and the activity it was recorded into. (Straight-line
    code: it runs once a second, cold, on the path of every fix.)"""
    alt, speed, course, hdop, sats = fix.alt_msl, fix.speed_mps, fix.course_deg, fix.hdop, fix.sats
    present = (
        (alt is not None) * _ALT
        | (speed is not None) * _SPEED
        | (course is not None) * _COURSE
        | (hdop is not None) * _HDOP
        | (sats is not None) * _SATS
    )
    body = _BODY.pack(
        local_id,
        (fix.time - _EPOCH) // _MICROSECOND,
        fix.unix,
        fix.lat,
        fix.lon,
        fix.mode,
        present,
        math.nan if alt is None else alt,
        math.nan if speed is None else speed,
        math.nan if course is None else course,
        math.nan if hdop is None else hdop,
        0 if sats is None else sats,
    )
    return body + _CRC.pack(zlib.crc32(body))


def decode(record: bytes) -> tuple[int, Fix] | None:
    """(activity id, fix) of one record; None when its CRC does not match (a torn write)."""
    body, (crc,) = record[: _BODY.size], _CRC.unpack_from(record, _BODY.size)
    if zlib.crc32(body) != crc:
        return None
    local_id, micros, unix, lat, lon, mode, present, alt, speed, course, hdop, sats = _BODY.unpack(
        body
    )
    fix = Fix(
        _EPOCH + timedelta(microseconds=micros),
        unix,
        lat,
        lon,
        FixMode(mode),
        alt if present & _ALT else None,
        speed if present & _SPEED else None,
        course if present & _COURSE else None,
        sats if present & _SATS else None,
        hdop if present & _HDOP else None,
    )
    return local_id, fix


def read_journal(path: Path) -> tuple[list[tuple[int, Fix]], int]:
    """Every whole record of the file at ``path`` (none when it does not exist), and the
    length of that valid part: a torn or garbled record ends it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    entries: list[tuple[int, Fix]] = []
    end = 0
    while end + RECORD_SIZE <= len(data):
        entry = decode(data[end : end + RECORD_SIZE])
        if entry is None:
            break
        entries.append(entry)
        end += RECORD_SIZE
    return entries, end


class FixJournal:
    """The open journal file: append fixes durably, empty it, close it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.records = 0  # records in the file now

    def open(self) -> list[tuple[int, Fix]]:
        """Open (create, 0600) the file and return what it holds; a torn tail is cut off so
        that new records follow the last whole one."""
        entries, valid = read_journal(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            if os.fstat(fd).st_size != valid:
                os.ftruncate(fd, valid)
            os.lseek(fd, valid, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.records = len(entries)
        return entries

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def append(self, local_id: int, fixes: Sequence[Fix]) -> None:
        """Write the fixes' records and ``fdatasync``: on disk when this returns. On an error
        (disk full, I/O error) the file is cut back to what it held, and the error raised."""
        fd = self._fd
        if fd is None:
            raise OSError("the fix journal is not open")
        data = encode(local_id, fixes[0]) if len(fixes) == 1 else b"".join(
            [encode(local_id, fix) for fix in fixes]
        )
        start = self.records * RECORD_SIZE
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to the fix journal ({written} of {len(data)} bytes)")
            os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
                os.lseek(fd, start, os.SEEK_SET)
            except OSError:
                self.close()  # cannot say what the file holds: use it no more
            raise
        self.records += len(fixes)

    def clear(self) -> None:
        """Empty the file: a committed sampler state covers every record in it. Not synced:
        records that come back after a power cut are older than that state and skipped."""
        fd = self._fd
        if fd is None or not self.records:
            return
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self.records = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
