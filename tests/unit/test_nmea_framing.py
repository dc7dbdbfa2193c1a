"""Framing: lines, checksums, run-together sentences, garbage. No input may raise."""

from __future__ import annotations

import functools
import operator

import pytest

from tracker.gps.nmea.framing import MAX_SENTENCE, Framer, nmea_checksum
from tracker.gps.nmea.sentences import FIX_TYPES


def nmea(body: str) -> bytes:
    raw = body.encode()
    return b"$" + raw + b"*%02X\r\n" % functools.reduce(operator.xor, raw, 0)


RMC = nmea("GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E")
GGA = nmea("GPGGA,081836,3751.65,S,14507.36,E,1,08,0.9,545.4,M,46.9,M,,")


def framer() -> Framer:
    return Framer(FIX_TYPES)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 200, 256])
def test_checksum_matches_plain_xor(length: int) -> None:
    body = bytes((i * 37 + 11) % 256 for i in range(length))
    assert nmea_checksum(body) == functools.reduce(operator.xor, body, 0)


def test_good_sentences_pass_and_others_are_skipped() -> None:
    f = framer()
    gsv = nmea("GPGSV,3,1,12,2,15,123,,5,45,347,45,6,58,198,,7,45,212,")
    out = f.feed(RMC + gsv + GGA + nmea("PGRME,15.0,M,45.0,M,25.0,M"))
    assert out == [RMC[1:-5], GGA[1:-5]]
    assert f.stats.sentences == 4
    assert f.stats.skipped == 2


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_any_line_ending(ending: bytes) -> None:
    f = framer()
    data = (RMC.rstrip() + ending) * 3
    assert len(f.feed(data)) == 3


def test_any_chunking_gives_the_same_sentences() -> None:
    data = (RMC + GGA) * 5
    whole = framer().feed(data)
    f = framer()
    pieces: list[bytes] = []
    for i in range(len(data)):
        pieces += f.feed(data[i : i + 1])
    assert pieces == whole


def test_bad_checksum_dropped_and_counted() -> None:
    f = framer()
    bad = RMC.replace(b"3751.65", b"3751.66")
    assert f.feed(bad) == []
    assert f.stats.bad_checksum == 1


def test_lower_case_hex_is_valid_and_non_hex_is_bad() -> None:
    f = framer()
    lower = RMC[:-4] + RMC[-4:-2].lower() + b"\r\n"
    assert len(f.feed(lower)) == 1
    assert f.feed(RMC[:-4] + b"3)\r\n") == []
    assert f.stats.bad_checksum == 1


def test_missing_checksum_accepted_like_gpsd() -> None:
    f = framer()
    assert f.feed(b"$GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E\n")
    assert f.stats.no_checksum == 1


def test_truncated_line_recovered_from_the_last_dollar() -> None:
    # gp-320fw coldboot: a sentence cut short and the next one glued to it.
    f = framer()
    line = b"$GPGSA,A,1,,$" + RMC[1:]
    assert f.feed(line) == [RMC[1:-5]]
    assert f.stats.garbage == 1  # the truncated GSA, not a sentence


def test_complete_sentences_run_together_are_all_kept() -> None:
    f = framer()
    assert f.feed(RMC.rstrip() + GGA) == [RMC[1:-5], GGA[1:-5]]


def test_binary_garbage_and_overlong_lines_are_skipped() -> None:
    f = framer()
    noise = bytes(range(256)) * 20
    out = f.feed(noise + b"\n" + b"$GPGGA," + b"1" * (2 * MAX_SENTENCE) + b"*00\n" + RMC)
    assert out == [RMC[1:-5]]
    assert f.stats.garbage + f.stats.too_long + f.stats.bad_checksum >= 2


def test_endless_line_does_not_grow_the_buffer() -> None:
    f = framer()
    for _ in range(100):
        f.feed(b"x" * 4096)
    assert len(f._pending) <= 1024
    assert f.feed(b"\n" + RMC) == [RMC[1:-5]]


def test_last_line_without_newline_counts_at_flush() -> None:
    f = framer()
    assert f.feed(RMC.rstrip()) == []
    assert f.flush() == [RMC[1:-5]]


def test_ais_and_proprietary_are_skipped_not_errors() -> None:
    f = framer()
    ais = b"!AIVDM,1,1,,A,15MgK45P3@G?fl0E`JbR0OwT0@MS,0*4E\r\n"
    assert f.feed(ais + nmea("PSRFEP,070051.000,061015,1.0,2.0")) == []
    assert f.stats.skipped == 2


@pytest.mark.parametrize(
    "line",
    [
        b"$*00\n",
        b"x$*00\n",
        b"$*00",
        b"$GP*17\n",
        b"!*00\n",
        b"$\n",
        b"$,*2C\n",
        b"*\n",
        b"$!,RMC,*7D\n",
    ],
)
def test_degenerate_sentences_are_garbage_not_errors(line: bytes) -> None:
    f = framer()
    assert f.feed(line) + f.flush() == []
