"""Hypothesis: no input can crash the decoder, and garbage never becomes a fix.

* random bytes in random chunks → no exception;
* random valid sentences → the fast parser and the pynmea2 reference agree field for field,
  and the decoder gives the position that was encoded;
* valid sentences with one byte changed, truncated, or run together → no exception, and every
  position that comes out is one that was sent intact;
* bytes with a correct checksum around them → never a fix.
"""

from __future__ import annotations

import functools
import operator

from hypothesis import given
from hypothesis import strategies as st

from tracker.gps.nmea import FixDecoder
from tracker.gps.nmea.reference import parse_with_pynmea2
from tracker.gps.nmea.sentences import PARSERS
from tracker.model import FixMode


def checksummed(body: bytes) -> bytes:
    return b"$" + body + b"*%02X\r\n" % functools.reduce(operator.xor, body, 0)


def decode_all(chunks: list[bytes]) -> list[tuple[float, float]]:
    decoder = FixDecoder()
    fixes = []
    for chunk in chunks:
        fixes += decoder.feed(chunk)
    fixes += decoder.flush()
    return [(f.lat, f.lon) for f in fixes if f.mode >= FixMode.FIX_2D]


talkers = st.sampled_from(["GP", "GN", "GL", "GA", "GB", "BD", "GQ", "QZ"])


@st.composite
def positions(draw: st.DrawFn) -> tuple[str, str, str, str]:
    lat_deg = draw(st.integers(0, 89))
    lat_min = draw(st.integers(0, 599999)) / 10000
    lon_deg = draw(st.integers(0, 179))
    lon_min = draw(st.integers(0, 599999)) / 10000
    return (f"{lat_deg:02d}{lat_min:07.4f}", draw(st.sampled_from("NS")),
            f"{lon_deg:03d}{lon_min:07.4f}", draw(st.sampled_from("EW")))  # fmt: skip


@st.composite
def times(draw: st.DrawFn) -> str:
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.sampled_from(["", ".00", ".50", ".123"]))
    return f"{h:02d}{m:02d}{s:02d}{frac}"


@st.composite
def fix_sentences(draw: st.DrawFn) -> bytes:
    talker = draw(talkers)
    lat, ns, lon, ew = draw(positions())
    t = draw(times())
    kind = draw(st.sampled_from(["RMC", "GGA", "GLL", "GNS"]))
    if kind == "RMC":
        day, month, year = (
            draw(st.integers(1, 28)),
            draw(st.integers(1, 12)),
            draw(st.integers(0, 99)),
        )
        speed = draw(st.integers(0, 9999)) / 10
        body = (
            f"{talker}RMC,{t},{draw(st.sampled_from('AV'))},{lat},{ns},{lon},{ew},"
            f"{speed:.1f},{draw(st.integers(0, 359))}.0,{day:02d}{month:02d}{year:02d},,,A"
        )
    elif kind == "GGA":
        body = (
            f"{talker}GGA,{t},{lat},{ns},{lon},{ew},{draw(st.integers(0, 5))},"
            f"{draw(st.integers(0, 24)):02d},{draw(st.integers(5, 999)) / 10},"
            f"{draw(st.integers(-100, 9000)) / 10},M,47.0,M,,"
        )
    elif kind == "GLL":
        body = f"{talker}GLL,{lat},{ns},{lon},{ew},{t},{draw(st.sampled_from('AV'))},A"
    else:
        body = (f"{talker}GNS,{t},{lat},{ns},{lon},{ew},{draw(st.sampled_from(['AN', 'NN', 'A']))},"
                f"08,1.0,10.0,47.0,,")  # fmt: skip
    return checksummed(body.encode())


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    decode_all(chunks)


# Bytes drawn mostly from NMEA's own alphabet reach the framer's corner cases ("$*00", "*",
# ",,", "$$", runs of digits) far more often than uniform random bytes do.
nmea_ish = st.lists(
    st.sampled_from(
        [
            b"$",
            b"!",
            b"*",
            b",",
            b".",
            b"\r",
            b"\n",
            b"GP",
            b"GN",
            b"RMC",
            b"GGA",
            b"GLL",
            b"ZDA",
            b"A",
            b"V",
            b"N",
            b"E",
            b"0",
            b"1",
            b"5",
            b"9",
            b"00",
            b"2C",
            b"\x00",
            b"\xff",
        ]
    ),
    max_size=80,
).map(b"".join)


@given(st.lists(nmea_ish, max_size=10), st.integers(1, 40))
def test_nmea_alphabet_soup_never_raises(parts: list[bytes], size: int) -> None:
    stream = b"".join(parts)
    decode_all([stream[i : i + size] for i in range(0, len(stream), size)])


@given(st.lists(nmea_ish.filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=10))
def test_checksummed_alphabet_soup_never_raises(bodies: list[bytes]) -> None:
    decode_all([b"".join(checksummed(body) for body in bodies)])


@given(st.lists(st.binary(min_size=1, max_size=120), max_size=30))
def test_checksummed_garbage_never_becomes_a_fix(bodies: list[bytes]) -> None:
    stream = b"".join(checksummed(body.replace(b"\n", b" ")) for body in bodies)
    assert decode_all([stream]) == []


@given(fix_sentences())
def test_fast_parser_agrees_with_pynmea2(sentence: bytes) -> None:
    fields = sentence[1:-5].split(b",")
    assert PARSERS[fields[0][2:]](fields) == parse_with_pynmea2(fields)


@given(st.lists(fix_sentences(), min_size=1, max_size=12), st.integers(1, 64))
def test_valid_sentences_in_any_chunking(sentences: list[bytes], size: int) -> None:
    date = checksummed(b"GPZDA,000000,01,01,2024,,")
    stream = date + b"".join(sentences)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert decode_all(chunks) == decode_all([stream])
    engines = []
    for engine in ("fast", "pynmea2"):
        decoder = FixDecoder(engine=engine)  # type: ignore[arg-type]
        engines.append(decoder.feed(stream) + decoder.flush())
    assert engines[0] == engines[1]


def intact_positions(sentences: list[bytes]) -> set[tuple[float, float]]:
    out = set()
    for sentence in sentences:
        fields = sentence[1:-5].split(b",")
        report = PARSERS[fields[0][2:]](fields)
        if report.valid and report.lat is not None and report.lon is not None:
            out.add((report.lat, report.lon))
    return out


@given(st.lists(fix_sentences(), min_size=1, max_size=8), st.data())
def test_damaged_sentences_never_raise_nor_invent_positions(
    sentences: list[bytes], data: st.DataObject
) -> None:
    damaged = []
    for sentence in sentences:
        action = data.draw(st.sampled_from(["keep", "flip", "truncate", "join"]))
        if action == "flip":
            i = data.draw(st.integers(0, len(sentence) - 3))
            byte = (sentence[i] + data.draw(st.integers(1, 255))) % 256  # a different byte
            sentence = sentence[:i] + bytes([byte]) + sentence[i + 1 :]
        elif action == "truncate":
            sentence = sentence[: data.draw(st.integers(0, len(sentence) - 1))]
        elif action == "join":
            sentence = sentence.rstrip()  # runs into the next one
        damaged.append(sentence)
    got = decode_all([checksummed(b"GPZDA,000000,01,01,2024,,"), *damaged])
    assert set(got) <= intact_positions(sentences)


@given(
    st.lists(
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99999), times()),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([None, "1999-08-22", "2025-01-01", "2150-01-01"]),
)
def test_any_date_fields_never_raise(dates: list[tuple[int, int, int, str]], floor: str | None
                                     ) -> None:  # fmt: skip
    from datetime import date

    stream = b""
    for day, month, year, t in dates:
        stream += checksummed(f"GPZDA,{t},{day:02d},{month:02d},{year:04d},,".encode())
        stream += checksummed(
            f"GPRMC,{t},A,4807.038,N,01131.000,E,1.0,2.0,{day:02d}{month:02d}{year % 100:02d},,,A"
            .encode()
        )  # fmt: skip
    decoder = FixDecoder(rollover_floor=date.fromisoformat(floor) if floor else None)
    fixes = decoder.feed(stream) + decoder.flush()
    assert all(1969 <= f.time.year <= 2300 for f in fixes)
