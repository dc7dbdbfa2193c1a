"""The fix journal file alone: a record gives back the very fix written (every field, exactly),
a garbled or torn record ends the journal there and new records follow the last whole one, the
file is private, a failed append leaves the file as it was, and clear() starts it over. Real
files in a temp dir; the failing append is a real EFBIG from a file-size limit, in a child."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.model import Fix, FixMode
from tracker.storage.fix_journal import (
    JOURNAL_NAME,
    RECORD_SIZE,
    FixJournal,
    decode,
    encode,
    read_journal,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000


def fix_no(i: int) -> Fix:
    """The i-th fix of a plain 1 Hz track (the child process below makes the same ones)."""
    unix = float(T0 + i)
    return Fix(datetime.fromtimestamp(unix, UTC), unix, 45.0 + i * 1e-4, 7.0, FixMode.FIX_3D,
               alt_msl=200.0 + i, speed_mps=5.0, course_deg=0.0, sats=9, hdop=0.9)  # fmt: skip


def bits(value: float | None) -> bytes | None:
    """A float as its 8 bytes: equal exactly, NaN (and its payload) and -0.0 included."""
    return None if value is None else struct.pack("<d", value)


def same_fields(a: Fix, b: Fix) -> bool:
    """Every field bit for bit (Fix.__eq__ cannot see a NaN optional come back as NaN)."""
    return (
        a.time == b.time
        and a.time.utcoffset() == b.time.utcoffset()
        and bits(a.unix) == bits(b.unix)
        and bits(a.lat) == bits(b.lat)
        and bits(a.lon) == bits(b.lon)
        and a.mode is b.mode
        and bits(a.alt_msl) == bits(b.alt_msl)
        and bits(a.speed_mps) == bits(b.speed_mps)
        and bits(a.course_deg) == bits(b.course_deg)
        and a.sats == b.sats
        and bits(a.hdop) == bits(b.hdop)
    )


any_float = st.floats(allow_nan=True, allow_infinity=True)
optional = st.none() | any_float


@st.composite
def fixes(draw: st.DrawFn) -> Fix:
    """Any fix the record can hold: any UTC instant to the microsecond (year 1 to 9999),
    NaN coordinates (an epoch without a position), absent or present optionals of any value,
    satellites over the whole int32 range, every mode."""
    time = draw(st.datetimes(timezones=st.just(UTC)))
    return Fix(
        time=time,
        unix=draw(any_float),
        lat=draw(any_float),
        lon=draw(any_float),
        mode=draw(st.sampled_from(FixMode)),
        alt_msl=draw(optional),
        speed_mps=draw(optional),
        course_deg=draw(optional),
        sats=draw(st.none() | st.integers(-(2**31), 2**31 - 1)),
        hdop=draw(optional),
    )


@given(st.integers(0, 2**32 - 1), fixes())
def test_a_record_gives_back_every_field_of_the_fix_exactly(local_id: int, fix: Fix) -> None:
    record = encode(local_id, fix)
    assert len(record) == RECORD_SIZE
    decoded = decode(record)
    assert decoded is not None
    got_id, got = decoded
    assert got_id == local_id
    assert same_fields(got, fix), (got, fix)
    assert got.time == fix.time
    assert got.time.tzinfo is not None
    assert got.time.utcoffset() == timedelta(0)
    optionals_nan = any(
        v is not None and math.isnan(v)
        for v in (fix.unix, fix.alt_msl, fix.speed_mps, fix.course_deg, fix.hdop)
    )
    if not optionals_nan:  # Fix.__eq__ treats NaN coordinates as equal, nothing else
        assert got == fix


def test_absent_and_present_optionals_stay_apart() -> None:
    """Zero is a value, not absence (the flags, not a sentinel, say which is which)."""
    t = datetime(2024, 9, 23, 14, 26, 10, 123456, tzinfo=UTC)
    zeros = Fix(t, t.timestamp(), 0.0, -0.0, FixMode.UNKNOWN, 0.0, 0.0, 0.0, 0, 0.0)
    nones = Fix(t, t.timestamp(), math.nan, math.nan, FixMode.NO_FIX)
    for fix in (zeros, nones):
        decoded = decode(encode(7, fix))
        assert decoded is not None
        assert decoded[1] == fix
        assert same_fields(decoded[1], fix)
    assert decode(encode(7, zeros)) != decode(encode(7, nones))


def write_records(path: Path, count: int) -> bytes:
    data = b"".join(encode(3, fix_no(i)) for i in range(count))
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("flip_at", range(RECORD_SIZE))
def test_a_garbled_record_ends_the_journal_there(tmp_path: Path, flip_at: int) -> None:
    path = tmp_path / JOURNAL_NAME
    data = bytearray(write_records(path, 4))
    data[RECORD_SIZE + flip_at] ^= 0x5A  # the second record
    path.write_bytes(bytes(data))
    assert decode(bytes(data[RECORD_SIZE : 2 * RECORD_SIZE])) is None
    entries, valid = read_journal(path)
    assert entries == [(3, fix_no(0))]
    assert valid == RECORD_SIZE
    # Opened for appending: the garbled record and the whole ones after it are cut off, and a
    # new record follows the first.
    journal = FixJournal(path)
    assert journal.open() == [(3, fix_no(0))]
    journal.append(3, [fix_no(9)])
    journal.close()
    assert read_journal(path) == ([(3, fix_no(0)), (3, fix_no(9))], 2 * RECORD_SIZE)
    assert path.stat().st_size == 2 * RECORD_SIZE


@pytest.mark.parametrize("tail", [1, RECORD_SIZE // 2, RECORD_SIZE - 1])
def test_a_torn_tail_is_cut_off_and_new_records_follow_the_last_whole_one(
    tmp_path: Path, tail: int
) -> None:
    path = tmp_path / JOURNAL_NAME
    whole = write_records(path, 3)
    path.write_bytes(whole + encode(3, fix_no(3))[:tail])  # the power went mid-write
    assert read_journal(path) == ([(3, fix_no(i)) for i in range(3)], 3 * RECORD_SIZE)
    journal = FixJournal(path)
    assert journal.open() == [(3, fix_no(i)) for i in range(3)]
    assert journal.records == 3
    assert path.stat().st_size == 3 * RECORD_SIZE
    journal.append(3, [fix_no(4), fix_no(5)])
    journal.close()
    again = FixJournal(path)
    expected = [(3, fix_no(i)) for i in (0, 1, 2, 4, 5)]
    assert again.open() == expected
    assert again.records == 5
    again.close()
    assert path.read_bytes() == whole + encode(3, fix_no(4)) + encode(3, fix_no(5))


def test_no_file_reads_as_an_empty_journal(tmp_path: Path) -> None:
    assert read_journal(tmp_path / JOURNAL_NAME) == ([], 0)


def test_the_file_is_created_private_and_an_existing_one_made_private(tmp_path: Path) -> None:
    old = os.umask(0)  # the mode must not depend on the umask the service runs with
    try:
        fresh = FixJournal(tmp_path / JOURNAL_NAME)
        assert fresh.open() == []
        fresh.close()
        assert stat.S_IMODE((tmp_path / JOURNAL_NAME).stat().st_mode) == 0o600
    finally:
        os.umask(old)
    existing = tmp_path / "other" / JOURNAL_NAME
    existing.parent.mkdir()
    write_records(existing, 2)
    existing.chmod(0o644)
    journal = FixJournal(existing)
    assert len(journal.open()) == 2
    journal.close()
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600


# The child: two records appended, then a file-size limit (SIGXFSZ ignored, so the write fails
# with EFBIG instead of killing the process), appends that fail, the limit lifted, one more.
_FAILING_APPENDS = """
import errno, json, os, resource, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from tracker.model import Fix, FixMode
from tracker.storage.fix_journal import RECORD_SIZE, FixJournal

def fix_no(i):
    unix = float({t0} + i)
    return Fix(datetime.fromtimestamp(unix, UTC), unix, 45.0 + i * 1e-4, 7.0, FixMode.FIX_3D,
               alt_msl=200.0 + i, speed_mps=5.0, course_deg=0.0, sats=9, hdop=0.9)

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
journal = FixJournal(Path(sys.argv[1]))
journal.open()
journal.append(3, [fix_no(0)])
journal.append(3, [fix_no(1)])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
out = []
# At the end of the file: the write itself fails. Mid-record: a short write, then the failure.
for limit, batch in ((2 * RECORD_SIZE, [2]), (2 * RECORD_SIZE + RECORD_SIZE // 2, [2, 3])):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        journal.append(3, [fix_no(i) for i in batch])
    except OSError as exc:
        out.append([exc.errno, journal.records, journal.is_open, os.path.getsize(sys.argv[1])])
    else:
        out.append(None)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
journal.append(3, [fix_no(4)])
out.append(journal.records)
journal.close()
print(json.dumps(out))
"""


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_APPENDS.format(t0=T0), str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    too_big, short_then_too_big, records_after = json.loads(done.stdout)
    # EFBIG from the write itself; a short write is an OSError of its own (no errno). Right
    # after each, the file holds the two whole records and nothing more.
    assert too_big == [errno.EFBIG, 2, True, 2 * RECORD_SIZE]
    assert short_then_too_big == [None, 2, True, 2 * RECORD_SIZE]
    assert records_after == 3
    # Only whole records: the two before the failures and the one after, nothing of the
    # failed ones, and the last right after the second (the file was cut back each time).
    expected = [(3, fix_no(0)), (3, fix_no(1)), (3, fix_no(4))]
    assert read_journal(path) == (expected, 3 * RECORD_SIZE)
    assert path.stat().st_size == 3 * RECORD_SIZE


def test_clear_empties_the_file_and_appends_start_over(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    journal = FixJournal(path)
    journal.open()
    journal.append(3, [fix_no(0), fix_no(1), fix_no(2)])
    assert path.stat().st_size == 3 * RECORD_SIZE
    journal.clear()
    assert path.stat().st_size == 0
    assert journal.records == 0
    journal.append(4, [fix_no(7)])
    assert path.stat().st_size == RECORD_SIZE
    assert read_journal(path) == ([(4, fix_no(7))], RECORD_SIZE)
    journal.close()
    again = FixJournal(path)
    assert again.open() == [(4, fix_no(7))]
    again.close()


def test_an_append_to_a_closed_journal_raises(tmp_path: Path) -> None:
    journal = FixJournal(tmp_path / JOURNAL_NAME)
    with pytest.raises(OSError, match="not open"):
        journal.append(1, [fix_no(0)])
    journal.clear()  # nothing open: nothing to do
    assert not journal.is_open
