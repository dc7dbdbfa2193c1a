"""Epoch assembly: one immutable Fix per receiver epoch, dates only from the receiver."""

from __future__ import annotations

import functools
import math
import operator
from datetime import UTC, date, datetime, timedelta

import pytest

from tracker.gps.nmea import FixDecoder
from tracker.model import Fix, FixMode


def nmea(body: str) -> bytes:
    raw = body.encode()
    return b"$" + raw + b"*%02X\r\n" % functools.reduce(operator.xor, raw, 0)


def rmc(t: str, d: str = "230924", status: str = "A", lat: str = "4742.0467",
        lon: str = "00321.0000", speed: str = "10.0", course: str = "90.0") -> bytes:  # fmt: skip
    return nmea(f"GPRMC,{t},{status},{lat},N,{lon},W,{speed},{course},{d},,,A")


def gga(t: str, q: int = 1, sats: str = "08", hdop: str = "0.9", alt: str = "12.5",
        lat: str = "4742.0467", lon: str = "00321.0000") -> bytes:  # fmt: skip
    return nmea(f"GPGGA,{t},{lat},N,{lon},W,{q},{sats},{hdop},{alt},M,49.0,M,,")


def decode(*chunks: bytes, **kwargs: object) -> tuple[list[Fix], FixDecoder]:
    dec = FixDecoder(**kwargs)  # type: ignore[arg-type]
    out: list[Fix] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush(), dec


def test_one_fix_per_epoch_merging_all_sentences() -> None:
    data = (
        rmc("142601.00") + nmea("GPVTG,90.0,T,,M,10.0,N,18.5,K,A") + gga("142601.00")
        + nmea("GPGSA,A,3,01,02,03,04,,,,,,,,,1.8,0.9,1.5")
        + rmc("142602.00", lat="4742.0500")
    )  # fmt: skip
    fixes, dec = decode(data)
    assert len(fixes) == 2
    first = fixes[0]
    assert first.time == datetime(2024, 9, 23, 14, 26, 1, tzinfo=UTC)
    assert first.unix == first.time.timestamp()
    assert first.lat == pytest.approx(47 + 42.0467 / 60)
    assert first.lon == pytest.approx(-(3 + 21 / 60))
    assert first.mode is FixMode.FIX_3D
    assert first.alt_msl == 12.5
    assert first.speed_mps == pytest.approx(10 * 1852 / 3600)
    assert first.course_deg == 90.0
    assert first.sats == 8
    assert first.hdop == 0.9
    assert fixes[1].lat == pytest.approx(47 + 42.05 / 60)
    assert dec.stats.epochs == 2
    assert dec.stats.fixes == 2


def test_fix_is_immutable() -> None:
    fixes, _ = decode(rmc("000001"))
    with pytest.raises(AttributeError):
        fixes[0].lat = 1.0  # type: ignore[misc]


def test_void_fixes_are_no_fix_never_zero_zero() -> None:
    data = (
        rmc("000001", status="V", lat="", lon="")
        + gga("000002", q=0, lat="0000.0000", lon="00000.0000")
        + rmc("000003", lat="0000.0000", lon="00000.0000")  # "A" but 0,0: not a position
    )
    fixes, dec = decode(data)
    assert [f.mode for f in fixes] == [FixMode.NO_FIX] * 3
    assert all(math.isnan(f.lat) and math.isnan(f.lon) for f in fixes)
    assert dec.stats.no_fix == 3
    assert dec.stats.fixes == 0


def test_gga_fix_from_zero_satellites_is_not_a_position() -> None:
    # tomales_data: the first GGA says quality 1 from 0 satellites (gpsd ignores it too).
    fixes, _ = decode(nmea("GPZDA,000001,01,01,2024,,") + gga("000001", sats="00") + gga("000002"))
    assert [f.mode for f in fixes] == [FixMode.NO_FIX, FixMode.FIX_3D]


def test_mode_from_gsa_or_altitude() -> None:
    two_d = rmc("000001") + nmea("GPGSA,A,2,01,02,03,,,,,,,,,,2.0,1.0,1.7")
    no_alt_gga = rmc("000002") + gga("000002", alt="")
    fixes, _ = decode(two_d + no_alt_gga)
    assert [f.mode for f in fixes] == [FixMode.FIX_2D, FixMode.FIX_2D]


def test_date_from_zda_when_no_rmc() -> None:
    data = gga("235959") + nmea("GPZDA,235959,31,12,2023,00,00") + gga("000000") + gga("000001")
    fixes, _ = decode(data)
    assert [f.time for f in fixes] == [
        datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]


def test_utc_midnight_between_rmcs() -> None:
    # A receiver that sends RMC only every few epochs: the date rolls over by itself.
    data = rmc("235959.5", d="311299") + gga("000000.0") + gga("000000.5")
    fixes, _ = decode(data)
    assert [f.time.date() for f in fixes] == [
        date(1999, 12, 31),
        date(2000, 1, 1),
        date(2000, 1, 1),
    ]
    assert fixes[1].unix - fixes[0].unix == pytest.approx(0.5)


@pytest.mark.parametrize(("yy", "year"), [("05", 2005), ("68", 2068), ("69", 1969), ("99", 1999)])
def test_two_digit_years(yy: str, year: int) -> None:
    fixes, _ = decode(rmc("120000", d=f"0101{yy}"))
    assert fixes[0].time.year == year


def test_week_rollover_after_a_good_date_is_corrected() -> None:
    # gp-320fw coldboot: 2019-04-07, then the receiver reboots into 1999-08-22 (1024 weeks back).
    data = rmc("000001", d="070419") + rmc("000002", d="220899") + rmc("000003", d="220899")
    fixes, dec = decode(data)
    assert {f.time.date() for f in fixes} == {date(2019, 4, 7)}
    assert dec.stats.rollover_corrected == 2


def test_week_rollover_floor_for_a_live_receiver() -> None:
    fixes, dec = decode(rmc("120000", d="220899"), rollover_floor=date(2019, 4, 7))
    assert fixes[0].time.date() == date(2019, 4, 7)
    fixes, dec = decode(rmc("120000", d="260506"), rollover_floor=date(2025, 1, 1))
    assert fixes[0].time.date() == date(2006, 5, 26) + timedelta(weeks=1024)
    assert dec.stats.rollover_corrected == 1


def hms(second: int) -> str:
    return f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"


@pytest.mark.parametrize("floor", [None, date(2025, 1, 1)])
def test_one_future_date_does_not_move_later_dates(floor: date | None) -> None:
    # Issue 14: one checksum-valid RMC dated 2046 among correct 2026 dates made every later
    # date move 1024 weeks ahead (2026 → 2045). The outlier keeps its date (the filter drops
    # it); the dates after it stay in 2026.
    good = [rmc(hms(36000 + s), d="150326") for s in range(50)]
    bad = rmc(hms(36050), d="150346")
    after = [rmc(hms(36051 + s), d="150326") for s in range(48)]
    fixes, dec = decode(b"".join(good) + bad + b"".join(after), rollover_floor=floor)
    years = [f.time.year for f in fixes]
    assert years == [2026] * 50 + [2046] + [2026] * 48
    assert dec.stats.rollover_corrected == 0


def test_one_future_date_then_carried_dates_do_not_confirm_it() -> None:
    # GGA-only epochs after the outlier carry its date: they confirm nothing.
    data = (
        b"".join(rmc(hms(36000 + s), d="150326") for s in range(5))
        + rmc("100005", d="150346")
        + b"".join(gga(hms(36006 + s)) for s in range(5))
        + rmc("100011", d="150326")
    )
    fixes, dec = decode(data)
    assert fixes[-1].time == datetime(2026, 3, 15, 10, 0, 11, tzinfo=UTC)
    assert dec.stats.rollover_corrected == 0


def test_a_confirmed_leap_ahead_still_corrects_later_rollover_victims() -> None:
    # A log that starts in the receiver's rolled-over era (1999) and is then set right (2019,
    # three dated epochs in a row): a later 1999 date is again moved 1024 weeks forward.
    data = (rmc("000001", d="220899") + rmc("000002", d="220899")
            + b"".join(rmc(f"00000{s}", d="070419") for s in range(3, 6))
            + rmc("000006", d="220899"))  # fmt: skip
    fixes, dec = decode(data)
    assert [f.time.date() for f in fixes] == [date(1999, 8, 22)] * 2 + [date(2019, 4, 7)] * 4
    assert dec.stats.rollover_corrected == 1


def test_undated_fixes_are_held_back_then_dated() -> None:
    data = gga("235958") + gga("235959") + gga("000000") + rmc("000001", d="020124")
    fixes, dec = decode(data)
    assert [f.time for f in fixes] == [
        datetime(2024, 1, 1, 23, 59, 58, tzinfo=UTC),
        datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC),
        datetime(2024, 1, 2, 0, 0, 0, tzinfo=UTC),
        datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC),
    ]
    assert dec.stats.held_no_date == 0
    assert dec.stats.undated == 0


def test_fixes_without_any_date_are_reported_not_guessed() -> None:
    gll = [nmea(f"GPGLL,6000.0000,N,02330.0000,E,1200{s:02d},A,A") for s in range(5)]
    dec = FixDecoder()
    assert dec.feed(b"".join(gll)) == []
    # The cycle (one GLL) is learned after two epochs, so the last epoch closed on its GLL too.
    assert dec.stats.held_no_date == 5
    assert dec.flush() == []
    assert dec.stats.undated == 5
    assert dec.stats.held_no_date == 0


def test_held_back_queue_is_bounded() -> None:
    dec = FixDecoder(max_held=3)
    for s in range(10):
        dec.feed(gga(f"1200{s:02d}"))
    assert dec.stats.held_no_date == 3
    # All ten epochs are closed: after two, the cycle (one GGA) is known, so each closes when
    # its GGA is fed.
    assert dec.stats.undated == 7


def test_gll_only_receiver() -> None:
    data = nmea("GPZDA,120000,01,06,2024,,") + b"".join(
        nmea(f"GPGLL,6000.{s:04d},N,02330.0000,E,1200{s:02d},A,A") for s in range(3)
    )
    fixes, _ = decode(data)
    assert len(fixes) == 3
    assert all(f.mode is FixMode.FIX_2D for f in fixes)


def test_ten_hz_epochs() -> None:
    data = b"".join(rmc(f"120000.{tenth}0") + gga(f"120000.{tenth}0") for tenth in range(10))
    fixes, _ = decode(data)
    assert len(fixes) == 10
    assert [round(f.unix % 1, 1) for f in fixes] == [t / 10 for t in range(10)]


def test_time_going_backwards_is_counted_and_still_reported() -> None:
    data = rmc("165840") + rmc("165837") + rmc("165841")
    fixes, dec = decode(data)
    assert len(fixes) == 3
    assert dec.stats.time_backwards == 1


def test_resync_closes_the_epoch_and_keeps_the_date() -> None:
    dec = FixDecoder()
    assert dec.feed(rmc("120000") + b"$GPGGA,1200") == []
    fixes = dec.resync()
    assert len(fixes) == 1
    assert dec.feed(gga("120001") + gga("120002"))[0].time.date() == date(2024, 9, 23)


def test_malformed_fix_sentences_are_counted() -> None:
    fixes, dec = decode(
        nmea("GPRMC,1x0000,A,4742.0467,N,00321.0000,W,1,1,230924,,,A")
        + nmea("GPRMC,120000,A,47XX.0467,N,00321.0000,W,1,1,230924,,,A")
        + nmea("GPGGA,120000")
    )
    assert fixes == []
    assert dec.stats.malformed == 3


def test_engines_agree() -> None:
    data = rmc("120000") + gga("120000") + nmea("GPVTG,90.0,T,,M,10.0,N,18.5,K,A") + rmc("120001")
    assert decode(data)[0] == decode(data, engine="pynmea2")[0]


@pytest.mark.parametrize("year", ["0001", "9999", "1979", "2201"])
def test_zda_year_out_of_range_is_malformed(year: str) -> None:
    fixes, dec = decode(nmea(f"GPZDA,120000,01,01,{year},,") + gga("120000") + gga("120001"))
    assert fixes == []
    assert dec.stats.malformed == 1


def test_no_input_can_raise_from_date_arithmetic() -> None:
    # The largest dates a sentence can carry, with a rollover floor that moves them further.
    data = rmc("235959", d="311268") + nmea("GPZDA,000000,31,12,2200,,") + gga("000001")
    fixes, _ = decode(data, rollover_floor=date(2150, 1, 1))
    assert len(fixes) == 3
