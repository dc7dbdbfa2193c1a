"""The long real tracks (../shared/data/tracks) and the parser suites' samples (../parsers):
no crash, and fix counts and drop reasons as INDEX.md says they should be."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, shared_file
from tracker.config import FilterSettings
from tracker.gps.filters import FixFilter
from tracker.gps.replay import read_fixes
from tracker.model import FixMode

KEYS = ("sentences", "bad_checksum", "no_checksum", "garbage", "malformed", "epochs", "fixes",
        "no_fix", "undated", "time_backwards")  # fmt: skip

# file: (decoder counters in KEYS order, filter drops with the default settings, accepted)
TRACKS = {
    # 4469 valid RMC fixes as INDEX.md counts; 4 "*** program startup ***" banner lines are
    # garbage; crosses UTC midnight (checked below); 21 fixes with HDOP > 10.
    "NmeaParser__NmeaSampleData.txt": (
        (53628, 0, 0, 4, 0, 4469, 4469, 0, 0, 0),
        {"hdop": 21},
        4448,
    ),
    # No GGA (no altitude/satellites: every fix 2D); the truncated last line "$GNRMC,154131."
    # has no checksum and too few fields: one malformed sentence, nothing else lost.
    "ROB__gx.to.gavres.nmea": ((12605, 0, 1, 0, 1, 3663, 3663, 0, 0, 0), {}, 3663),
    # RMC time goes back 3 s once (counted as time_backwards; those epochs carry HDOP 20-999
    # and are dropped for HDOP); first GGA has 0 satellites; truncated last line; 7541 epochs
    # = INDEX's 7540 RMC fixes + the final GGA-only epoch.
    "ROB__tomales_data.shrinked.nmea": (
        (29627, 0, 1, 0, 1, 7541, 7541, 0, 0, 1),
        {"hdop": 236},
        7305,
    ),
    # GLL positions only and no date anywhere (ZDA date fields empty): every one of the 7250
    # fixes is held back and reported as undated, none is guessed from the computer's clock.
    "signalk-server__plaka.log": ((116000, 0, 0, 0, 0, 0, 0, 0, 7250, 0), {}, 0),
}

PARSERS = {
    # GGA south/east with no date anywhere (held back, undated); "foobar" is garbage; $GPR00
    # is a type nobody uses; the final $IIMWV has no newline and is still read.
    "pynmea2/examples/data.log": ((4, 0, 0, 1, 0, 0, 0, 0, 1, 0), {}, 0),
    "pynmeagps/tests/pygpsdata-BADHDR.log": ((15, 1, 0, 0, 0, 2, 2, 0, 0, 0), {}, 2),
    # ends with a bare "$": a garbage fragment, tolerated
    "pynmeagps/tests/pygpsdata-badeof.log": ((4, 0, 0, 1, 0, 1, 1, 0, 0, 0), {}, 1),
    # UBX binary around NMEA: resynchronised; its two fixes carry no date (GGA/GLL only)
    "pynmeagps/tests/pygpsdata-mixed.log": ((15, 0, 0, 16, 0, 0, 0, 0, 2, 0), {}, 0),
    "pynmeagps/tests/pygpsdata-nmea2.log": ((17, 0, 0, 0, 0, 2, 2, 0, 0, 0), {}, 2),
    "pynmeagps/tests/pygpsdata-nmea4.log": ((56, 0, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),
    "pynmeagps/tests/pygpsdata-nmea4lc.log": ((5, 0, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),  # *0e
    "pynmeagps/tests/pygpsdata-nmea4sm.log": ((8, 0, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),
    # XXXXX speed with a wrong checksum: both bad sentences dropped
    "pynmeagps/tests/pygpsdata-nmeabadck.log": ((1, 2, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),
    "pynmeagps/tests/pygpsdata-nmeabadck2.log": ((7, 1, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),  # *3)
    "pynmeagps/tests/pygpsdata-nmeafoo1.log": ((8, 0, 0, 0, 0, 1, 1, 0, 0, 0), {}, 1),  # $GNFOO
    # RMC speed "X.138": that RMC is malformed, so the epoch's GGA position has no date
    "pynmeagps/tests/pygpsdata-nmeafoo2.log": ((8, 0, 0, 0, 1, 0, 0, 0, 1, 0), {}, 0),
    # every field empty at start-up: no fix, no date, nothing emitted
    "pynmeagps/tests/pygpsdata-nmeastartup.log": ((12, 0, 0, 0, 0, 0, 0, 0, 0, 0), {}, 0),
    # GLL with a negative longitude string "-0214.41467156": malformed, not a position
    "pynmeagps/tests/pygpsdata-um981.log": ((5, 0, 0, 0, 2, 2, 2, 0, 0, 0), {}, 2),
}
NO_FIX_FILES = (
    "feyman_nmea.log", "furuno_nmea.log", "kenwood_nmea.log", "locosys_get_nmea.log",
    "locosys_set_nmea.log", "pygpsdata-maritime.log", "pygpsdata-userdefined.log",
    "pygpsdata_quectel_pair_get.log", "pygpsdata_quectel_pair_poll.log",
    "pygpsdata_quectel_pair_set.log", "quectel_nmea_command.log", "quectel_nmea_get.log",
    "quectel_nmea_poll.log", "quectel_nmea_response.log", "septentriox5_nmea.log",
    "trimble_nmea.log", "unicore_nmea.log",
)  # fmt: skip


def check(path: Path, expected: tuple[tuple[int, ...], dict[str, int], int]) -> None:
    counters, drops, accepted = expected
    fixes, stats = read_fixes(path)
    settings = FilterSettings()
    fix_filter = FixFilter(settings.max_hdop, settings.max_speed_mps)
    for fix in fixes:
        fix_filter.accept(fix)
    got = stats.as_dict()
    assert tuple(got[k] for k in KEYS) == counters
    assert {k: v for k, v in fix_filter.drops.items() if v} == drops
    assert fix_filter.accepted == accepted
    for fix in fixes:
        if fix.mode >= FixMode.FIX_2D:
            assert (fix.lat, fix.lon) != (0.0, 0.0)
            assert -90 <= fix.lat <= 90
            assert -180 <= fix.lon <= 180


@pytest.mark.parametrize("name", sorted(TRACKS))
def test_tracks(name: str) -> None:
    check(shared_file("tracks", name), TRACKS[name])


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parser_samples(name: str) -> None:
    check(shared_file("parsers", *name.split("/")), PARSERS[name])


@pytest.mark.parametrize("name", NO_FIX_FILES)
def test_parser_samples_without_fixes(name: str) -> None:
    path = shared_file("parsers", "pynmeagps", "tests", name)
    fixes, stats = read_fixes(path)
    assert [f for f in fixes if f.mode >= FixMode.FIX_2D] == []
    assert stats.sentences > 0


def test_every_parser_sample_is_covered(shared_data: Path) -> None:
    files = {p.name for p in (SHARED_DATA / "parsers").rglob("*.log")}
    covered = {n.split("/")[-1] for n in PARSERS} | set(NO_FIX_FILES)
    assert files <= covered


def test_midnight_and_sessions_in_the_long_drive() -> None:
    fixes, _ = read_fixes(shared_file("tracks", "NmeaParser__NmeaSampleData.txt"))
    days = sorted({f.time.date().isoformat() for f in fixes})
    assert days == ["2005-09-25", "2005-09-26"]
    gaps = [b.unix - a.unix for a, b in itertools.pairwise(fixes)]
    assert min(gaps) > 0  # monotonic across midnight
    assert sorted(gaps)[-2:] == [798.0, 1250.0]  # the two gaps INDEX.md lists


@pytest.mark.parametrize("name", ["ROB__gx.to.gavres.nmea", "ROB__tomales_data.shrinked.nmea"])
def test_pynmea2_engine_agrees_on_tracks(name: str) -> None:
    path = shared_file("tracks", name)
    assert read_fixes(path) == read_fixes(path, engine="pynmea2")
