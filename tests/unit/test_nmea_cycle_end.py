"""End-of-cycle detection: an epoch's fix leaves when its burst is over, not one burst late.

The decoder learns the sentence that closes the receiver's burst (as gpsd does), closes on a
quiet line when told, and never lets the early close change a fix: fed burst by burst with a
quiet line between bursts, every shared log gives exactly the fixes of the file read whole.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tracker.gps.nmea import FixDecoder
from tracker.gps.nmea.pacing import epochs
from tracker.gps.replay import iter_log_lines, read_fixes


def nmea(body: str) -> bytes:
    raw = body.encode()
    return b"$" + raw + b"*%02X\r\n" % functools.reduce(operator.xor, raw, 0)


def burst(second: int, *, gsa_twice: bool = True) -> bytes:
    """A u-blox M8 style burst: RMC VTG GGA GSA GSA GSV (unused) GLL."""
    t = f"1200{second:02d}.00"
    gsa = nmea("GNGSA,A,3,10,12,,,,,,,,,,,1.5,0.9,1.2")
    return b"".join(
        [
            nmea(f"GNRMC,{t},A,4742.0467,N,00321.0000,W,10.0,90.0,230924,,,A"),
            nmea("GNVTG,90.0,T,,M,10.0,N,18.5,K,A"),
            nmea(f"GNGGA,{t},4742.0467,N,00321.0000,W,1,08,0.9,12.5,M,49.0,M,,"),
            gsa,
            gsa if gsa_twice else b"",
            nmea("GPGSV,1,1,02,10,45,120,40,12,30,200,35"),
            nmea(f"GNGLL,4742.0467,N,00321.0000,W,{t},A,A"),
        ]
    )


def test_each_burst_closes_itself_once_the_cycle_is_learned() -> None:
    dec = FixDecoder()
    got = [len(dec.feed(burst(s))) for s in range(6)]
    # Burst 0 closes when burst 1 begins, burst 1 when burst 2 begins; by then GLL closed two
    # bursts in a row, so burst 2 and every later one is returned by its own feed.
    assert got == [0, 1, 2, 1, 1, 1]
    assert dec.cycle_end_known
    assert dec.stats.closed_at_cycle_end == 4
    assert not dec.pending
    assert dec.flush() == []
    assert dec.stats.epochs == 6


def test_a_repeated_sentence_closes_on_its_last_occurrence() -> None:
    # Without GLL the burst ends with the second GNGSA: the first one must not close it.
    def gsa_last(second: int) -> bytes:
        whole = burst(second)
        return whole[: whole.index(b"$GPGSV")]

    dec = FixDecoder()
    for s in range(3):
        dec.feed(gsa_last(s))
    first_gsa_end = gsa_last(3).index(b"$GNGSA") + len(
        nmea("GNGSA,A,3,10,12,,,,,,,,,,,1.5,0.9,1.2")
    )
    assert dec.feed(gsa_last(3)[:first_gsa_end]) == []
    assert len(dec.feed(gsa_last(3)[first_gsa_end:])) == 1
    assert dec.stats.late == 0


def test_nothing_closes_while_the_bytes_at_hand_continue_the_epoch() -> None:
    # The learned ender followed, in the same bytes, by more of the epoch: no early close.
    dec = FixDecoder()
    dec.feed(burst(0) + burst(1) + burst(2))
    extra = nmea("GNZDA,120003.00,23,09,2024,00,00")
    fixes = dec.feed(burst(3) + extra)
    assert fixes == []
    assert dec.pending
    assert dec.stats.late == 0


def test_an_irregular_cycle_costs_at_most_one_epoch_then_waits_long() -> None:
    # A 10 Hz receiver with GGA every epoch and ZDA + RMC once a second (Oxford RT, rst39).
    def tenth(k: int) -> bytes:
        t = f"1200{k // 10:02d}.{k % 10}0"
        out = nmea(f"GPGGA,{t},4742.0467,N,00321.0000,W,1,08,0.9,12.5,M,49.0,M,,")
        if k % 10 == 0:
            out += nmea(f"GPRMC,{t},A,4742.0467,N,00321.0000,W,10.0,90.0,230924,,,A")
        return out

    dec = FixDecoder()
    fixes = []
    for k in range(1, 31):
        data = tenth(k)
        gga_end = data.index(b"\n") + 1
        fixes += dec.feed(data[:gga_end])  # sentence by sentence, the worst case
        fixes += dec.feed(data[gga_end:])
    fixes += dec.flush()
    assert len(fixes) == 30  # one fix per epoch, never two for the same time
    assert len({f.unix for f in fixes}) == 30
    assert dec.stats.late == 1  # the first full second's RMC came after its GGA closed it
    assert not dec.cycle_end_known  # 9 GGA-only epochs in a row are far from enough now
    with_speed = [f for f in fixes if f.speed_mps is not None]
    assert len(with_speed) == 2  # RMC at 12:00:20 and 12:00:30; the one at :10 was late


def test_quiet_closes_the_epoch_but_not_mid_sentence() -> None:
    dec = FixDecoder()
    data = burst(0)
    assert dec.feed(data[:-10]) == []
    assert dec.quiet() == []  # half a GLL is pending: the line stalled, the burst goes on
    assert dec.pending
    assert len(dec.feed(data[-10:]) + dec.quiet()) == 1
    assert dec.stats.closed_on_quiet == 1
    # A sentence of the closed epoch after all: counted, never a second fix for that time.
    assert dec.feed(nmea("GNGLL,4742.0467,N,00321.0000,W,120000.00,A,A")) == []
    assert dec.stats.late == dec.stats.late_after_quiet == 1
    assert len(dec.feed(burst(1)) + dec.flush()) == 1


def test_end_epoch_at_a_stop_returns_the_pending_epoch() -> None:
    dec = FixDecoder()
    data = burst(0)
    dec.feed(data[: data.index(b"$GNGGA")])  # RMC and VTG of the epoch, then the stop
    fixes = dec.end_epoch()
    assert len(fixes) == 1
    assert fixes[0].speed_mps is not None
    assert not dec.pending


def _logs() -> list[Path]:
    if not SHARED_DATA.is_dir():
        return []
    return sorted(
        p for p in SHARED_DATA.rglob("*") if p.is_file() and not p.name.endswith((".chk", ".md"))
    )


@pytest.mark.parametrize("log", _logs(), ids=lambda p: p.name)
def test_live_decoding_gives_the_fixes_of_the_file(log: Path) -> None:
    """Burst by burst (as a receiver sends them) with a quiet line after each: same fixes."""
    reference, _ = read_fixes(log)
    dec = FixDecoder()
    live = []
    for chunk in epochs(iter_log_lines(log)):
        live += dec.feed(b"".join(chunk.lines))
        live += dec.quiet()
    live += dec.flush()
    assert repr(live) == repr(reference)  # repr: NaN positions compare equal
